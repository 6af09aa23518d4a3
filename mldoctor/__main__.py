from mldoctor.cli import entry

entry()
