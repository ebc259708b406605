"""hasf.stonith: one fencing engine, three devices, two front ends.

- `engine`      the semantics (verified off, already-off, reboot = off + on,
                delays, retries, timeouts); `Device` is what a device implements
- `params`      parameters declared once: fence-agents names/aliases/getopt,
                cluster-glue names, types; parsed from stdin, argv or environment
- `targets`     node -> target maps (pcmk_host_map and cluster-glue host lists)
- `secrets`     password from parameter, file, script (no shell) or environment
- `definition`  a device definition (parameters, descriptions, factory) and the
                parameters common to all devices
- `fence_agent` front end: Pacemaker fence agent `fence_hasf_<device>`
- `glue`        front end: cluster-glue plugin `external/hasf-<device>`
- `ipmi`        device: IPMI BMC (built-in RMCP+ client `ipmi_native`, or ipmitool)
- `libvirt`     device: libvirt domains on an explicit URI
- `demo`        device: software fencing over ssh -- demonstrations only

Each device module exports `fence_main` and `glue_main` for the launchers
(packaging/executables.txt).
"""
