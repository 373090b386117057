"""The one shape rule every stage shares: M2U-Net's input height and width are multiples of 16 (four stride-2 stages).

Training pads its stacks to it, inference pads and tiles on its grid, export calibrates on crops of it.
"""

INPUT_MULTIPLE = 16


def round_up(value: int, multiple: int = INPUT_MULTIPLE) -> int:
    return -(-value // multiple) * multiple


def round_down(value: int, multiple: int = INPUT_MULTIPLE) -> int:
    return value - value % multiple
