"""Pacemaker durations ("90", "90s", "1500ms", "2min", "1h"), read the same way everywhere.

Used by OCF parameters (hasf.ocf.params.Duration) and by hasf-cib when it
compares op timeouts; no `re`, because OCF agents import this at every exec.
"""

UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 0.001, "msec": 0.001, "us": 1e-6, "usec": 1e-6,
         "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0}
HINT = "a duration such as 90, 90s, 1500ms, 2min or 1h"


def parse_duration(text):
    """Seconds (float) for a duration word; ValueError naming what is accepted."""
    word = str(text).strip().lower()
    number = word.rstrip("abcdefghijklmnopqrstuvwxyz").rstrip()
    unit = word[len(number):].strip()
    if unit not in UNITS or not number.replace(".", "", 1).isdigit():
        raise ValueError("must be " + HINT)
    return float(number) * UNITS[unit]
