"""``python -m m2unet`` is the ``m2unet`` command."""

from m2unet.cli import main

main(prog_name="m2unet")
