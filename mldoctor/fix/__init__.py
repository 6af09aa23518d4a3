"""`mldoctor fix CHECK_ID`: apply the fixes that can be applied safely.

`merge` holds the config edits as pure functions (the current JSON text in, the new text and a diff out);
`command` is the click command that gathers the facts of the daemon in use, checks the fix is needed, shows the
diff, and with `--yes` backs the file up, writes it atomically and (`--restart`) restarts the daemon the way it was
started.
"""
