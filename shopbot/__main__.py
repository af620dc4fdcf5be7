"""`python -m shopbot`: the same CLI as the installed `shopbot` command."""

from shopbot.cli import app

app(prog_name="shopbot")
