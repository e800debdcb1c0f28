"""A small writer of compound files (MS-CFB version 3), for test documents with objects
embedded the way Office embeds them: an OLE Package (``\\x01Ole10Native``) in a DOCX's
``word/embeddings/oleObject1.bin`` or in a legacy .doc's ObjectPool.

Only what the tests need: 512-byte sectors, one FAT (up to 109 FAT sectors), storages and
streams; a stream under 4,096 bytes in the mini stream (64-byte sectors, as the
specification requires), the others in regular sectors. Readers (olefile, which mailsvc
uses) follow the directory, the FAT and the mini FAT as Office's own files have them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import compressed_rtf

SECTOR = 512
END_OF_CHAIN = 0xFFFFFFFE
FREE = 0xFFFFFFFF
FAT_SECTOR = 0xFFFFFFFD
NO_STREAM = 0xFFFFFFFF
MINI_CUTOFF = 4096


@dataclass
class Storage:
    """A storage: named children, each a Storage or bytes (a stream)."""

    children: dict[str, Storage | bytes] = field(default_factory=dict)


@dataclass
class _Entry:
    name: str
    kind: int  # 1 storage, 2 stream, 5 root
    data: bytes = b""
    children: list[int] = field(default_factory=list)
    left: int = NO_STREAM
    right: int = NO_STREAM
    child: int = NO_STREAM
    start: int = END_OF_CHAIN


def write_cfb(root: Storage, *, first: str = "") -> bytes:
    """The compound file holding ``root``'s storages and streams; the stream named
    ``first`` (4,096 bytes or more) in the first sectors, right after the header."""
    entries = [_Entry("Root Entry", 5)]
    _add(entries, 0, root)
    for entry in entries:
        _tree(entries, entry)
    sectors: list[bytes] = []
    chains: list[list[int]] = []
    # The directory first (as Office writes it): the streams' data then starts past the
    # first 1,024 bytes, where a PDF header would make the file a PDF as well. The
    # ``first`` stream given to write_cfb is put before it, to make such a file.
    dir_count = -(-len(entries) * 128 // SECTOR)
    lead = [e for e in entries if e.kind == 2 and e.name == first][:1]
    lead = [e for e in lead if len(e.data) >= MINI_CUTOFF]
    for entry in lead:
        entry.start = len(sectors)
        count = -(-len(entry.data) // SECTOR)
        sectors.extend(
            entry.data[i * SECTOR : (i + 1) * SECTOR].ljust(SECTOR, b"\0") for i in range(count)
        )
        chains.append(list(range(entry.start, entry.start + count)))
    dir_first = len(sectors)
    sectors.extend([b""] * dir_count)
    chains.append(list(range(dir_first, dir_first + dir_count)))

    def place(data: bytes) -> int:
        first = len(sectors)
        count = -(-len(data) // SECTOR)
        sectors.extend(
            data[i * SECTOR : (i + 1) * SECTOR].ljust(SECTOR, b"\0") for i in range(count)
        )
        chains.append(list(range(first, first + count)))
        return first if count else END_OF_CHAIN

    mini = bytearray()
    mini_fat: list[int] = []
    for entry in entries:
        if entry.kind != 2:
            continue
        if lead and entry is lead[0]:
            continue
        if len(entry.data) >= MINI_CUTOFF:
            entry.start = place(entry.data)
        elif entry.data:
            first = len(mini) // 64
            count = -(-len(entry.data) // 64)
            mini += entry.data.ljust(count * 64, b"\0")
            mini_fat += [*range(first + 1, first + count), END_OF_CHAIN]
            entry.start = first
    entries[0].data = bytes(mini)  # the root entry's stream is the mini stream
    entries[0].start = place(bytes(mini))
    mini_fat_count = -(-len(mini_fat) * 4 // SECTOR)
    mini_fat_bytes = struct.pack(f"<{len(mini_fat)}I", *mini_fat)
    mini_fat_first = place(mini_fat_bytes.ljust(mini_fat_count * SECTOR, b"\xff"))
    directory = b"".join(_dirent(e) for e in entries).ljust(dir_count * SECTOR, b"\0")
    for i in range(dir_count):
        sectors[dir_first + i] = directory[i * SECTOR : (i + 1) * SECTOR]
    # FAT sectors: enough for every sector, themselves included (128 entries each)
    fat_count = 1
    while (len(sectors) + fat_count) > fat_count * (SECTOR // 4):
        fat_count += 1
    if fat_count > 109:
        raise ValueError("too large for a FAT without DIFAT sectors")
    fat_first = len(sectors)
    fat = [FREE] * (fat_count * SECTOR // 4)
    for chain in chains:
        for here, after in zip(chain, [*chain[1:], END_OF_CHAIN], strict=True):
            fat[here] = after
    for i in range(fat_first, fat_first + fat_count):
        fat[i] = FAT_SECTOR
    fat_bytes = struct.pack(f"<{len(fat)}I", *fat)
    sectors += [fat_bytes[i * SECTOR : (i + 1) * SECTOR] for i in range(fat_count)]
    difat = list(range(fat_first, fat_first + fat_count)) + [FREE] * (109 - fat_count)
    header = (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
        + b"\0" * 16
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + b"\0" * 6
        # directory sectors (0 in version 3), FAT sectors, first directory sector,
        # transaction, mini stream cutoff, mini FAT, DIFAT (none beyond the header's 109)
        + struct.pack(
            "<9I",
            0,
            fat_count,
            dir_first,
            0,
            MINI_CUTOFF,
            mini_fat_first,
            mini_fat_count,
            END_OF_CHAIN,
            0,
        )
        + struct.pack("<109I", *difat)
    )
    assert len(header) == SECTOR
    return header + b"".join(sectors)


def _add(entries: list[_Entry], parent: int, storage: Storage) -> None:
    for name, child in storage.children.items():
        index = len(entries)
        if isinstance(child, Storage):
            entries.append(_Entry(name, 1))
            entries[parent].children.append(index)
            _add(entries, index, child)
        else:
            entries.append(_Entry(name, 2, child))
            entries[parent].children.append(index)


def _tree(entries: list[_Entry], entry: _Entry) -> None:
    """The children as a binary tree in the order readers compare names (length, then
    upper case): a balanced one, every node black (a valid red-black tree when full; the
    readers do not check colours)."""
    order = sorted(entry.children, key=lambda i: (len(entries[i].name), entries[i].name.upper()))

    def build(items: list[int]) -> int:
        if not items:
            return NO_STREAM
        mid = len(items) // 2
        node = entries[items[mid]]
        node.left, node.right = build(items[:mid]), build(items[mid + 1 :])
        return items[mid]

    entry.child = build(order)


def _dirent(entry: _Entry) -> bytes:
    name = entry.name.encode("utf-16-le") + b"\0\0"
    if len(name) > 64:
        raise ValueError(f"name too long: {entry.name!r}")
    size = len(entry.data) if entry.kind in (2, 5) else 0
    start = entry.start if entry.kind in (2, 5) else END_OF_CHAIN
    return (
        name.ljust(64, b"\0")
        + struct.pack("<HBB", len(name), entry.kind, 1)
        + struct.pack("<III", entry.left, entry.right, entry.child)
        + b"\0" * 16  # CLSID
        + b"\0" * 4  # state bits
        + b"\0" * 16  # creation and modification times
        + struct.pack("<IQ", start, size)
    )


def ole_package(name: str, data: bytes, *, source: str = "") -> bytes:
    """An ``\\x01Ole10Native`` stream: ``data`` packaged as Office's Package object does
    (label, source path, command, then the file), MS-OLEDS 2.3.6."""
    path = source or f"C:\\Users\\vanthu\\Documents\\{name}"
    command = f"C:\\Users\\vanthu\\AppData\\Local\\Temp\\{name}".encode("cp1252") + b"\0"
    body = (
        struct.pack("<H", 2)
        + name.encode("cp1252", errors="replace")
        + b"\0"
        + path.encode("cp1252", errors="replace")
        + b"\0"
        + struct.pack("<HH", 0, 3)
        + struct.pack("<I", len(command))
        + command
        + struct.pack("<I", len(data))
        + data
    )
    return struct.pack("<I", len(body)) + body


def ole_object(name: str, data: bytes) -> bytes:
    """What Word stores as ``word/embeddings/oleObject1.bin`` for a file inserted as an
    object (Insert > Object > Create from file): a compound file with the Package."""
    return write_cfb(
        Storage(
            {
                "\x01CompObj": b"\x01\x00\xfe\xff\x03\x0a\x00\x00Package\x00",
                "\x01Ole10Native": ole_package(name, data),
            }
        )
    )


def legacy_doc_with_object(text: str, name: str, data: bytes) -> bytes:
    """A legacy .doc-like compound file: its text in ``WordDocument`` (UTF-16, as Word
    stores Vietnamese text) and ``data`` as a packaged object in its ObjectPool."""
    return write_cfb(
        Storage(
            {
                "WordDocument": text.encode("utf-16-le"),
                "1Table": b"\0" * 64,
                "ObjectPool": Storage(
                    {"_1778147020": Storage({"\x01Ole10Native": ole_package(name, data)})}
                ),
            }
        )
    )


def ppt_record(rtype: int, body: bytes, *, version: int = 0, instance: int = 0) -> bytes:
    """A PowerPoint record (MS-PPT 2.3.1): version and instance, type, length, body."""
    return struct.pack("<HHI", instance << 4 | version, rtype, len(body)) + body


def ppt_object_storage(storage: bytes, *, compressed: bool = True) -> bytes:
    """An ExOleObjStg record (0x1011) holding an embedded object's compound file: zlib-
    compressed after its size (instance 1), as PowerPoint saves it, or stored."""
    if not compressed:
        return ppt_record(0x1011, storage)
    body = struct.pack("<I", len(storage)) + zlib.compress(storage)
    return ppt_record(0x1011, body, instance=1)


def legacy_ppt_with_object(text: str, name: str, data: bytes, *, compressed: bool = True) -> bytes:
    """A legacy .ppt-like compound file: a DocumentContainer whose slide text is a
    TextCharsAtom (UTF-16, as PowerPoint stores Vietnamese text), then ``data`` packaged
    as an object (Insert > Object > Create from file) in an ExOleObjStg record."""
    slide_text = ppt_record(0x0FA0, text.encode("utf-16-le"))
    document = ppt_record(0x03E8, ppt_record(0x0FF0, slide_text, version=0xF), version=0xF)
    objects = ppt_object_storage(ole_object(name, data), compressed=compressed)
    return write_cfb(
        Storage(
            {
                "Current User": b"\0" * 32,
                "PowerPoint Document": document + objects,
                "Pictures": b"",
            }
        )
    )


def legacy_xls(cells: list[str], *, header: str = "") -> bytes:
    """A legacy Excel 97-2003 workbook's compound file: its "Workbook" stream of BIFF8
    records, the cells' text in a shared string table (SST) and ``header`` as the sheet's
    page header (HEADER, 0x0014), each string UTF-16 as Excel stores text outside Latin-1."""

    def record(kind: int, body: bytes) -> bytes:
        return struct.pack("<HH", kind, len(body)) + body

    def string(text: str) -> bytes:  # XLUnicodeString, fHighByte = 1
        return struct.pack("<HB", len(text), 1) + text.encode("utf-16-le")

    stream = record(0x0809, struct.pack("<HHHHII", 0x0600, 0x0005, 0x0DBB, 0x07CC, 0, 0))
    stream += record(
        0x00FC, struct.pack("<II", len(cells), len(cells)) + b"".join(map(string, cells))
    )
    stream += record(0x000A, b"")
    stream += record(0x0809, struct.pack("<HHHHII", 0x0600, 0x0010, 0x0DBB, 0x07CC, 0, 0))
    if header:
        stream += record(0x0014, string(header))
    stream += record(0x000A, b"")
    return write_cfb(Storage({"Workbook": stream}))


def outlook_msg(
    subject: str,
    body: str,
    files: list[tuple[str, bytes]],
    *,
    html: bytes = b"",
    rtf: bytes = b"",
) -> bytes:
    """An Outlook message saved as a file (.msg, MS-OXMSG): subject and body as UTF-16
    property streams, each attachment in its ``__attach_version1.0_#N`` storage with its
    bytes (PR_ATTACH_DATA_BIN) and long file name; ``html`` as PR_HTML, ``rtf`` as
    PR_RTF_COMPRESSED (LZFu-compressed, MS-OXRTFCP), the bodies Outlook shows first."""
    storages: dict[str, Storage | bytes] = {
        "__substg1.0_0037001F": subject.encode("utf-16-le"),
        "__substg1.0_1000001F": body.encode("utf-16-le"),
    }
    if html:
        storages["__substg1.0_10130102"] = html
    if rtf:
        storages["__substg1.0_10090102"] = compressed_rtf.compress(rtf)
    for index, (name, data) in enumerate(files):
        storages[f"__attach_version1.0_#{index:08X}"] = Storage(
            {
                "__substg1.0_37010102": data,
                "__substg1.0_3707001F": name.encode("utf-16-le"),
                "__substg1.0_3704001F": name[:8].encode("utf-16-le"),
            }
        )
    return write_cfb(Storage(storages))
