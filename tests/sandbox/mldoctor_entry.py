# The `mldoctor` command inside the sandbox: this checkout's package, as the console script would run it.
from mldoctor.cli import entry

entry()
