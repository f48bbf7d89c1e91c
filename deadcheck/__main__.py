"""``python -m deadcheck``: the same as the ``deadcheck`` command."""

from deadcheck.cli import main

if __name__ == "__main__":
    main()
