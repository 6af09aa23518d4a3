"""The probe image's build files. probe_image/Dockerfile is their one source: the wheel carries this folder as the
package `mldoctor.probe_image` (pyproject.toml maps it), which `mldoctor image build` reads."""
