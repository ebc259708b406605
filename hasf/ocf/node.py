"""Facts about the local node an agent needs: its cluster node name."""

import os


def local_node_name(invocation=None, deadline=None):
    """This node's name as the cluster knows it.

    Pacemaker passes it as OCF_RESKEY_CRM_meta_on_node (free); otherwise ask
    `crm_node -n` (bounded), and fall back to `uname -n` when the cluster
    stack is not running (ocf-tester, a person at a shell).
    """
    if invocation is not None and invocation.on_node:
        return invocation.on_node
    from hasf.runner import CommandError, run

    try:
        result = run(["crm_node", "-n"], timeout=5, deadline=deadline)
        name = result.stdout.strip()
        if result.rc == 0 and name:
            return name
    except CommandError:
        pass
    return os.uname().nodename
