//! `ADD --checksum=ALGORITHM:HEX` (BuildKit's, Dockerfile 1.6): a download is kept only if
//! its content has that digest.
use sha2::digest::DynDigest;

/// A digest a download must have: `sha256:…`, `sha384:…` or `sha512:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    algorithm: &'static str,
    hex: String,
}

impl Checksum {
    /// Parses `ALGORITHM:HEX`; the error is BuildKit's text.
    pub fn parse(text: &str) -> Result<Checksum, String> {
        let invalid = || format!("invalid checksum digest format: {text}");
        let (algorithm, hex) = text.split_once(':').ok_or_else(invalid)?;
        let (algorithm, len) = match algorithm {
            "sha256" => ("sha256", 64),
            "sha384" => ("sha384", 96),
            "sha512" => ("sha512", 128),
            _ => return Err(invalid()),
        };
        let lower_hex = hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != len || !lower_hex {
            return Err(invalid());
        }
        Ok(Checksum {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// A hasher of this checksum's algorithm, for the content as it comes.
    pub fn verifier(&self) -> Verifier {
        let hasher: Box<dyn DynDigest + Send> = match self.algorithm {
            "sha384" => Box::new(sha2::Sha384::default()),
            "sha512" => Box::new(sha2::Sha512::default()),
            _ => Box::new(sha2::Sha256::default()),
        };
        Verifier {
            want: self.clone(),
            hasher,
        }
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

/// Sums content against a [`Checksum`].
pub struct Verifier {
    want: Checksum,
    hasher: Box<dyn DynDigest + Send>,
}

impl Verifier {
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// Ok if the content had the digest; else BuildKit's `digest mismatch GOT: WANTED`.
    pub fn check(self) -> Result<(), String> {
        let got = Checksum {
            algorithm: self.want.algorithm,
            hex: hex::encode(self.hasher.finalize()),
        };
        if got == self.want {
            Ok(())
        } else {
            Err(format!("digest mismatch {got}: {}", self.want))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(checksum: &str, content: &[u8]) -> Result<(), String> {
        let mut v = Checksum::parse(checksum)?.verifier();
        // In pieces, as a download comes.
        for piece in content.chunks(3) {
            v.update(piece);
        }
        v.check()
    }

    #[test]
    fn content_is_checked_against_each_algorithm() {
        let abc256 = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(verify(abc256, b"abc"), Ok(()));
        let abc384 = "sha384:cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
                      8086072ba1e7cc2358baeca134c825a7";
        assert_eq!(verify(abc384, b"abc"), Ok(()));
        let abc512 = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                      2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
        assert_eq!(verify(abc512, b"abc"), Ok(()));
        let wrong = verify(abc256, b"abd").unwrap_err();
        assert!(
            wrong.starts_with("digest mismatch sha256:") && wrong.ends_with(&format!(": {abc256}")),
            "{wrong}"
        );
    }

    #[test]
    fn malformed_checksums_are_refused() {
        for bad in [
            "ba7816bf",
            "md5:900150983cd24fb0d6963f7d28e17f72",
            "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
            "sha256:ba78",
            "sha256:",
        ] {
            assert_eq!(
                Checksum::parse(bad),
                Err(format!("invalid checksum digest format: {bad}")),
            );
        }
    }
}
