"""What the Xen tests share: the Xen host's image, or a skip that says why there is none."""

import pytest


def xen_or_skip():
    """The cached XenImage (built first if needed); the test is skipped, with the reason,
    only when it cannot be built here (no Debian mirror, not root)."""
    from lab.debian import GuestImageUnavailable
    from lab.xen_image import xen_image

    try:
        return xen_image()
    except GuestImageUnavailable as exc:
        pytest.skip("no Xen host image: %s" % exc)
