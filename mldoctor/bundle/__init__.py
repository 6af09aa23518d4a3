"""`mldoctor report`: a support bundle (one zip) holding the report, its facts, an HTML page and the raw outputs a
support engineer asks for, redacted by default.

    collect.py   what goes into raw/ (a declarative list, each item with a deadline; errors are recorded)
    redact.py    the one scrubbing pass every byte of the archive goes through (secrets, optional pseudonyms)
    html.py      the self-contained HTML page, rendered from a Report
    archive.py   the atomic zip writer and its manifest
    command.py   the click command that wires them together
"""
