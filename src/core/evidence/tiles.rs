//! The log as C2SP `tlog-tiles`: static files any web server or mirror can serve.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of perfect subtrees of height `8·L`:
//! at level 0 the leaf hashes, above that the roots of full tiles of the level below. A tree of
//! size `s` has `floor(s / 256^L)` such hashes at level `L`; all but the last `mod 256` fill
//! full tiles, the rest make a partial tile of that width. Tiles live at `tile/<L>/<N>` (full)
//! and `tile/<L>/<N>.p/<W>` (partial), the entries themselves in bundles at
//! `tile/entries/<N>[.p/<W>]`, each entry prefixed by its length as a big-endian `u16`. `<N>`
//! is written in groups of three digits, all but the last prefixed with `x`
//! (`1234067` → `x001/x234/067`).
//!
//! This module only says which tiles a tree has and what they are called; the daemon reads
//! the hashes from its store and writes the files.

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;

/// One tile of a tree: its level, index and width (256 for a full tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub level: u8,
    pub index: u64,
    pub width: u64,
}

impl Tile {
    /// Its path under the log's URL prefix.
    pub fn path(&self) -> String {
        format!("tile/{}/{}", self.level, self.suffix())
    }

    /// The path of the entry bundle a level-0 tile covers.
    pub fn entries_path(&self) -> String {
        format!("tile/entries/{}", self.suffix())
    }

    /// The `(height, index)` of the perfect subtree behind each of its hashes, in order.
    pub fn subtrees(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        let height = u32::from(self.level) * 8;
        (0..self.width).map(move |i| (height, self.index * TILE_WIDTH + i))
    }

    /// Whether it is a full tile.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    fn suffix(&self) -> String {
        let n = encode_index(self.index);
        if self.is_full() {
            n
        } else {
            format!("{n}.p/{}", self.width)
        }
    }
}

/// `1234067` → `x001/x234/067`.
pub fn encode_index(n: u64) -> String {
    let digits = n.to_string();
    let pad = (3 - digits.len() % 3) % 3;
    let padded = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = padded
        .as_bytes()
        .chunks(3)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let last = groups.len().saturating_sub(1);
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g}")
            } else {
                (*g).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The tiles that a tree of size `new` has and one of size `old` did not: every tile that
/// filled up in between, and the partial tile of each level that changed. Empty when `new <=
/// old`.
pub fn new_tiles(old: u64, new: u64) -> Vec<Tile> {
    let mut tiles = Vec::new();
    if new <= old {
        return tiles;
    }
    for level in 0u8..8 {
        let shift = 8 * u32::from(level);
        let (count, before) = (new >> shift, old >> shift);
        if count == 0 {
            break;
        }
        if count == before {
            continue;
        }
        for index in before / TILE_WIDTH..count / TILE_WIDTH {
            tiles.push(Tile {
                level,
                index,
                width: TILE_WIDTH,
            });
        }
        if count % TILE_WIDTH > 0 {
            tiles.push(Tile {
                level,
                index: count / TILE_WIDTH,
                width: count % TILE_WIDTH,
            });
        }
    }
    tiles
}

/// An entry bundle: each entry prefixed by its length, big-endian `u16`. `None` if one is
/// longer than 65,535 bytes.
pub fn bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Some(out)
}

/// The entries of a bundle; `None` if it is cut short.
pub fn unbundle(mut bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<2>()?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, rest) = rest.split_at_checked(len)?;
        entries.push(entry);
        bytes = rest;
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn indexes_are_written_in_groups_of_three() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(5), "005");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
    }

    #[test]
    fn the_specs_example_tree_of_70000_entries() {
        // C2SP tlog-tiles: 273 full level-0 tiles, a partial one of width 112, one full level-1
        // tile, a partial one of width 17, and a partial level-2 tile of width 1.
        let t = new_tiles(0, 70_000);
        let count = |level, full: bool| {
            t.iter()
                .filter(|x| x.level == level && x.is_full() == full)
                .count()
        };
        assert_eq!(count(0, true), 273);
        assert_eq!(count(1, true), 1);
        assert_eq!(count(2, true), 0);
        let partial: Vec<_> = t
            .iter()
            .filter(|x| !x.is_full())
            .map(|x| x.path())
            .collect();
        assert_eq!(
            partial,
            ["tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1"]
        );
        assert_eq!(
            new_tiles(0, 256).iter().map(Tile::path).collect::<Vec<_>>(),
            ["tile/0/000", "tile/1/000.p/1"]
        );
    }

    #[test]
    fn growing_writes_only_what_changed() {
        let paths = |old, new| {
            new_tiles(old, new)
                .iter()
                .map(Tile::path)
                .collect::<Vec<_>>()
        };
        assert_eq!(paths(3, 7), ["tile/0/000.p/7"]);
        assert_eq!(
            paths(250, 300),
            ["tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1"]
        );
        assert_eq!(paths(300, 310), ["tile/0/001.p/54"]);
        assert!(paths(7, 7).is_empty());
        let t = new_tiles(0, 3)[0];
        assert_eq!(t.entries_path(), "tile/entries/000.p/3");
        assert_eq!(t.subtrees().collect::<Vec<_>>(), [(0, 0), (0, 1), (0, 2)]);
    }

    #[test]
    fn bundles_round_trip_and_a_cut_one_is_refused() {
        let b = bundle([b"ab".as_slice(), b"".as_slice(), b"xyz".as_slice()]).unwrap();
        assert_eq!(b, [0, 2, b'a', b'b', 0, 0, 0, 3, b'x', b'y', b'z']);
        assert_eq!(unbundle(&b).unwrap(), [b"ab".as_slice(), b"", b"xyz"]);
        assert!(unbundle(&b[..b.len() - 1]).is_none());
        assert!(bundle([vec![0u8; 65_536].as_slice()]).is_none());
    }
}
