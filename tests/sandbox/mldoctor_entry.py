# The `mldoctor` command inside the sandbox: the checkout's package, with `mldoctor fix` registered the way
# mldoctor/cli.py registers its commands (`cli.add_command(fix_command)`), should this checkout's cli.py lack it.
from mldoctor.cli import cli, main
from mldoctor.fix.command import command as fix_command

if "fix" not in cli.commands:
    cli.add_command(fix_command)
main()
