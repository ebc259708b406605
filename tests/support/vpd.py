"""Raw VPD pages of an iSCSI LUN, read with the host's libiscsi (libiscsi7) over loopback.

Why not only iscsi-inq: it decodes page 0x83 and prints its binary (NAA)
designators as C strings, so two pages that differ after a designator's
first zero byte look the same.  Comparing what an initiator sees needs the
bytes.  This calls libiscsi's synchronous API through ctypes -- login, one
INQUIRY with EVPD set, logout -- and checks its reading of `struct
scsi_task` against what the INQUIRY must hold (the CDB it sent, the page
code in the answer), so a layout that differs fails loudly instead of
returning wrong bytes.

    vpd_page("127.0.0.1:3260", "iqn....:san", 1, 0x83) -> bytes of the page
"""

import ctypes
import struct

ISCSI_SESSION_NORMAL = 2
INQUIRY = 0x12
#: struct scsi_task (libiscsi's scsi-lowlevel.h, x86_64): status at 0, cdb_size at 4,
#: cdb[16] at 16, datain {int size; unsigned char *data} at 64
TASK_STATUS, TASK_CDB_SIZE, TASK_CDB, TASK_DATAIN = 0, 4, 16, 64


def _library():
    lib = ctypes.CDLL("libiscsi.so.7")
    lib.iscsi_create_context.restype = ctypes.c_void_p
    lib.iscsi_create_context.argtypes = [ctypes.c_char_p]
    lib.iscsi_destroy_context.argtypes = [ctypes.c_void_p]
    lib.iscsi_set_targetname.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.iscsi_set_session_type.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.iscsi_full_connect_sync.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.iscsi_logout_sync.argtypes = [ctypes.c_void_p]
    lib.iscsi_get_error.restype = ctypes.c_char_p
    lib.iscsi_get_error.argtypes = [ctypes.c_void_p]
    lib.iscsi_inquiry_sync.restype = ctypes.c_void_p
    lib.iscsi_inquiry_sync.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                       ctypes.c_int, ctypes.c_int]
    lib.scsi_free_scsi_task.argtypes = [ctypes.c_void_p]
    return lib


def vpd_page(portal, target, lun, page, initiator="iqn.2026-12.org.hasf.test:vpd"):
    """The bytes of VPD page `page` of `lun`, header included; AssertionError on failure."""
    lib = _library()
    ctx = lib.iscsi_create_context(initiator.encode())
    assert ctx, "iscsi_create_context failed"
    try:
        lib.iscsi_set_targetname(ctx, target.encode())
        lib.iscsi_set_session_type(ctx, ISCSI_SESSION_NORMAL)
        assert lib.iscsi_full_connect_sync(ctx, portal.encode(), lun) == 0, \
            "login to %s %s: %s" % (portal, target, lib.iscsi_get_error(ctx))
        task = lib.iscsi_inquiry_sync(ctx, lun, 1, page, 255)
        assert task, "INQUIRY failed: %s" % lib.iscsi_get_error(ctx)
        try:
            data = _datain(task, page)
        finally:
            lib.scsi_free_scsi_task(task)
        lib.iscsi_logout_sync(ctx)
        return data
    finally:
        lib.iscsi_destroy_context(ctx)


def _datain(task, page):
    head = ctypes.string_at(task, TASK_DATAIN + 16)
    status, cdb_size = struct.unpack_from("ii", head, TASK_STATUS)
    cdb = head[TASK_CDB:TASK_CDB + cdb_size]
    assert (cdb_size, cdb[0], cdb[1] & 1, cdb[2]) == (6, INQUIRY, 1, page), \
        "struct scsi_task layout not as expected: %r" % head.hex()
    assert status == 0, "INQUIRY status %d" % status
    size, pointer = struct.unpack_from("i4xP", head, TASK_DATAIN)
    data = ctypes.string_at(pointer, size)
    assert size >= 4 and data[1] == page, "not page 0x%02x: %r" % (page, data.hex())
    return data


def designators(page83):
    """Page 0x83's designators as [(code set, association+type byte, designator bytes)]."""
    found, offset = [], 4
    while offset + 4 <= len(page83):
        length = page83[offset + 3]
        found.append((page83[offset] & 0x0f, page83[offset + 1],
                      page83[offset + 4:offset + 4 + length]))
        offset += 4 + length
    return found
