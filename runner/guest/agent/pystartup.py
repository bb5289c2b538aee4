"""PYTHONSTARTUP for guest Python sessions.

The prompts' markers come from kblog_prompts (site/), as for every Python of the
guest. Here readline stays off: the terminal echoes what is typed, as a plain
one does.
"""

import sys

sys.__interactivehook__ = lambda: None
del sys
