"""The motions of a two-digit Bouncing MNIST caption ("digit 3 is moving up
and down and digit 7 is moving left and right"), shared by the scripts that
group test videos by them."""
import re
import sys

MOTION = re.compile(r"moving (up and down|left and right)")


def motions(caption, where):
    """The caption's two motions, in caption order; exits with `where` named
    if the caption does not have two."""
    found = MOTION.findall(caption)
    if len(found) != 2:
        sys.exit(f"{where}: not a two-digit caption: {caption!r}")
    return found


def same_motion(caption, where):
    """Whether both digits of the caption move the same way."""
    first, second = motions(caption, where)
    return first == second
