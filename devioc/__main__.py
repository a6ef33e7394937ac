"""``python -m devioc``: the devioc command line (``python -m devioc run MODULE:App --device X``)."""


def main() -> None:
    """Take the stop signals first (before the app's imports), then run the command line."""
    from .shell import stop_quietly_until_served

    stop_quietly_until_served()
    from .cli import main as cli_main

    cli_main(prog_name='python -m devioc')


if __name__ == '__main__':
    main()
