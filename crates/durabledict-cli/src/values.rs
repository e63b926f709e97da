//! How the command stores values: the chosen encoding, with the pickle options that data of
//! Python 2 programs needs (how a Python 2 `str` reads, which protocol is written).

use durabledict::{BoxError, Encoding, Pickle, Protocol, Python2Str, Value, ValueEncoding};

use crate::failure::Failure;

/// [`ValueEncoding`], its pickle configured.
#[derive(Debug, Clone)]
pub(crate) struct Values {
    encoding: ValueEncoding,
    pickle: Pickle<Value>,
}

impl Values {
    /// `encoding`; the pickle options are a usage error with another encoding, where they
    /// would silently do nothing.
    pub(crate) fn new(
        encoding: ValueEncoding,
        python2_str: Python2Str,
        protocol: Protocol,
    ) -> Result<Values, Failure> {
        let pickle = Pickle::<Value>::new()
            .with_python2_str(python2_str)
            .with_protocol(protocol);
        if encoding != ValueEncoding::Pickle
            && (python2_str != Python2Str::default() || protocol != Protocol::default())
        {
            return Err(Failure::Usage(format!(
                "--python2-str and --pickle-protocol apply to --encoding pickle, not {encoding}"
            )));
        }
        Ok(Values { encoding, pickle })
    }
}

impl Encoding<Value> for Values {
    fn encode(&self, value: &Value) -> Result<Vec<u8>, BoxError> {
        match self.encoding {
            ValueEncoding::Pickle => self.pickle.encode(value),
            other => other.encode(value),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, BoxError> {
        match self.encoding {
            ValueEncoding::Pickle => self.pickle.decode(bytes),
            other => other.decode(bytes),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_python2_str_of_any_bytes_reads_as_asked_and_is_written_for_python2() {
        // Python 2's pickle.dumps('U\x01\xe9', 2), base64 lines as durabledict stores it.
        let stored = b"gAJVA1UB6XEALg==\n";
        let text = Values::new(ValueEncoding::Pickle, Python2Str::Text, Protocol::V3).unwrap();
        let err = text.decode(stored).unwrap_err().to_string();
        assert!(err.contains("Python2Str"), "{err}");
        let bytes = Values::new(ValueEncoding::Pickle, Python2Str::Bytes, Protocol::V2).unwrap();
        let value = bytes.decode(stored).unwrap();
        assert_eq!(value, Value::Bytes(b"U\x01\xe9".to_vec()));
        let written = bytes.encode(&value).unwrap();
        assert_eq!(bytes.decode(&written).unwrap(), value);
        let latin1 = Values::new(ValueEncoding::Pickle, Python2Str::Latin1, Protocol::V3).unwrap();
        assert_eq!(
            latin1.decode(stored).unwrap(),
            Value::String("U\u{1}é".into())
        );
    }

    #[test]
    fn pickle_options_need_the_pickle_encoding() {
        for encoding in [ValueEncoding::Json, ValueEncoding::Raw] {
            assert!(Values::new(encoding, Python2Str::Bytes, Protocol::V3).is_err());
            assert!(Values::new(encoding, Python2Str::Text, Protocol::V2).is_err());
            assert!(Values::new(encoding, Python2Str::Text, Protocol::V3).is_ok());
        }
    }
}
