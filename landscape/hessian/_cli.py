"""placeholder"""

__all__ = ["main"]


def main(argv=None) -> int:
    return 0
