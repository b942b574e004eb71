//! The ISO 4217 currency codes (active ones, lowercase, sorted): what a metric's
//! `currency` label may be, so a code nobody issues (a gateway's event names what the
//! viewer asked for) cannot make a series of its own.

/// The codes, sorted for a binary search.
const CODES: [&str; 160] = [
    "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd", "bdt",
    "bgn", "bhd", "bif", "bmd", "bnd", "bob", "brl", "bsd", "btn", "bwp", "byn", "bzd", "cad",
    "cdf", "chf", "clp", "cny", "cop", "crc", "cuc", "cup", "cve", "czk", "djf", "dkk", "dop",
    "dzd", "egp", "ern", "etb", "eur", "fjd", "fkp", "gbp", "gel", "ghs", "gip", "gmd", "gnf",
    "gtq", "gyd", "hkd", "hnl", "htg", "huf", "idr", "ils", "inr", "iqd", "irr", "isk", "jmd",
    "jod", "jpy", "kes", "kgs", "khr", "kmf", "kpw", "krw", "kwd", "kyd", "kzt", "lak", "lbp",
    "lkr", "lrd", "lsl", "lyd", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop", "mru", "mur",
    "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "omr", "pab",
    "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd",
    "scr", "sdg", "sek", "sgd", "shp", "sle", "sll", "sos", "srd", "ssp", "stn", "svc", "syp",
    "szl", "thb", "tjs", "tmt", "tnd", "top", "try", "ttd", "twd", "tzs", "uah", "ugx", "usd",
    "uyu", "uzs", "ved", "ves", "vnd", "vuv", "wst", "xaf", "xcd", "xcg", "xof", "xpf", "yer",
    "zar", "zmw", "zwg", "zwl",
];

/// `code` (lowercase) when ISO 4217 issues it, else `"other"`.
pub(crate) fn label(code: &str) -> &str {
    if CODES.binary_search(&code).is_ok() {
        code
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_pass_and_the_rest_is_other() {
        assert!(CODES.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(label("usd"), "usd");
        assert_eq!(label("eur"), "eur");
        assert_eq!(label("zwl"), "zwl");
        assert_eq!(label("zzz"), "other");
        assert_eq!(label("USD"), "other", "the ledger's codes are lowercase");
    }
}
