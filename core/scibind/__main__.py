"""``python -m scibind`` (and ``torchrun -m scibind``) runs the command line."""

from scibind.cli.main import main

if __name__ == "__main__":
    main()
