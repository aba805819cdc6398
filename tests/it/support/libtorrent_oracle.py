#!/usr/bin/env python3
"""Prints libtorrent's v1 and v2 info-hashes for one file or folder and piece length.

The reference implementation is the oracle for our .torrent encoding:
    libtorrent_oracle.py PATH PIECE_LENGTH [v1-only]  ->  "<v1 hex> <v2 hex>"
With v1-only, libtorrent makes a v1-only torrent and the v2 hash printed is all zeros.

For a folder, libtorrent is given the files our rule shares (hidden names and symbolic links
leading outside or to directories left out), so the comparison is of the encoding alone.
"""
import os
import sys

import libtorrent as lt

path, piece_length = os.path.abspath(sys.argv[1]), int(sys.argv[2])
root = os.path.realpath(path)


def shared(p):
    if os.path.basename(p).startswith("."):
        return False
    if os.path.islink(p):
        real = os.path.realpath(p)
        return real.startswith(root + os.sep) and os.path.isfile(real)
    return True


fs = lt.file_storage()
lt.add_files(fs, path, shared)
flags = lt.create_torrent.v1_only if sys.argv[3:] == ["v1-only"] else 0
t = lt.create_torrent(fs, piece_length, flags=flags)
lt.set_piece_hashes(t, os.path.dirname(path))
info = lt.torrent_info(lt.bencode(t.generate()))
hashes = info.info_hashes()
print(str(hashes.v1), str(hashes.v2))
