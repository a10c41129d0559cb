"""`python -m mmadapt` (and `deepspeed --module mmadapt ...`) run the CLI."""
from mmadapt.cli import main

main()
