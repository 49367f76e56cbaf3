"""The command line: one module per command, each a parser builder plus a plain function."""
