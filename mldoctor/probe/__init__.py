"""The probe: `probe.py` is the program that runs inside any image (standard library plus optional torch), and
`launch` starts it in a container or on the host. Nothing here is imported by `mldoctor --help`."""
