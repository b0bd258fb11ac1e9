//! Lenient readers for operation parameters.
//!
//! One parameter struct serves every wire format, so its fields must accept what each format can
//! express: plain XML and SOAP carry only text (`<sensitive>true</sensitive>`, `<expires_in>300</expires_in>`)
//! and a list of one is a single element; MI's XML-to-JSON conversion guesses types, so an id may arrive
//! as a number and a one-element list as a scalar. These functions accept all of that and nothing
//! ambiguous: `"yes"` is not a boolean, `"3.5"` is not a count.

use secrecy::SecretString;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use super::{Param, ParamKind};

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        // A list is also what an XML element given more than once becomes.
        Value::Array(_) => "a list (or a repeated element)",
        Value::Object(_) => "an object",
    }
}

fn scalar_to_string<E: de::Error>(v: Value) -> Result<Option<String>, E> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(E::custom(format!(
            "expected text, found {}",
            describe(&other)
        ))),
    }
}

/// Text; a number or a boolean is taken as its text (MI turns `"123"` into `123`).
pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    scalar_to_string(Value::deserialize(d)?)
}

/// Like [`opt_string`], for values that must never be printed.
pub fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(opt_string(d)?
        .filter(|s| !s.is_empty())
        .map(SecretString::from))
}

/// `true`/`false` as JSON booleans or as text.
pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        Value::String(s) => match s.trim() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            "" => Ok(None),
            other => Err(de::Error::custom(format!(
                "expected true or false, found {other:?}"
            ))),
        },
        other => Err(de::Error::custom(format!(
            "expected true or false, found {}",
            describe(&other)
        ))),
    }
}

/// A whole number, as a JSON number or as text.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected a whole number, found {n}"))),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("expected a whole number, found {s:?}"))),
        other => Err(de::Error::custom(format!(
            "expected a whole number, found {}",
            describe(&other)
        ))),
    }
}

/// A list of text: a JSON array, or one value standing for a list of one (XML, MI's JSON).
pub fn opt_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| scalar_to_string(item).transpose())
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        scalar => Ok(scalar_to_string(scalar)?.map(|s| vec![s])),
    }
}

/// A list that may also come as one string separated by spaces or newlines (Mastodon's own form for
/// `redirect_uris`).
pub fn opt_list_or_separated<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    Ok(opt_list(d)?.map(|items| {
        items
            .iter()
            .flat_map(|s| s.split_whitespace())
            .map(str::to_owned)
            .collect()
    }))
}

/// What makes a type a parameter struct: its parameters, described for the documents, and written
/// back as the form pairs a server takes. Implemented by [`params!`](crate::operations::params!) only,
/// so the description is the struct.
pub trait Params: Sized {
    /// The fields, in declaration order.
    const PARAMS: &'static [Param];
    /// Appends every field that has a value as form pairs (`name`, `name[]`, `name[field]`).
    fn write(&self, prefix: &str, out: &mut Vec<(String, String)>);
}

/// A field type of a parameter struct: how it is read leniently (see the module documentation),
/// what kind the documents call it, and how it is written back as form pairs.
pub trait Lenient: Sized {
    const KIND: ParamKind;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
    fn write(&self, name: &str, out: &mut Vec<(String, String)>);
}

/// The first parameter marked required that `value` (an object) lacks, holds as null, or holds as
/// empty text (an empty XML element).
pub fn missing_required(params: &[Param], value: &Value) -> Option<&'static str> {
    params
        .iter()
        .filter(|p| p.required)
        .find(|p| match value.get(p.name) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.trim().is_empty(),
            Some(_) => false,
        })
        .map(|p| p.name)
}

/// The one `deserialize_with` of every [`params!`](crate::operations::params!) field.
pub fn lenient<'de, D: Deserializer<'de>, T: Lenient>(d: D) -> Result<T, D::Error> {
    T::read(d)
}

/// A required text (its presence is checked before the struct is read, from [`Param::required`]).
impl Lenient for String {
    const KIND: ParamKind = ParamKind::Text;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(opt_string(d)?.unwrap_or_default())
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        out.push((name.to_owned(), self.clone()));
    }
}

impl Lenient for Option<String> {
    const KIND: ParamKind = ParamKind::Text;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_string(d)
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        if let Some(v) = self {
            out.push((name.to_owned(), v.clone()));
        }
    }
}

impl Lenient for Option<SecretString> {
    const KIND: ParamKind = ParamKind::Text;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_secret(d)
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        use secrecy::ExposeSecret;
        if let Some(v) = self {
            out.push((name.to_owned(), v.expose_secret().to_owned()));
        }
    }
}

impl Lenient for Option<bool> {
    const KIND: ParamKind = ParamKind::Bool;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_bool(d)
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        if let Some(v) = self {
            out.push((name.to_owned(), v.to_string()));
        }
    }
}

impl Lenient for Option<u64> {
    const KIND: ParamKind = ParamKind::Count;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_u64(d)
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        if let Some(v) = self {
            out.push((name.to_owned(), v.to_string()));
        }
    }
}

impl Lenient for Option<Vec<String>> {
    const KIND: ParamKind = ParamKind::List;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_list(d)
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        for v in self.iter().flatten() {
            out.push((format!("{name}[]"), v.clone()));
        }
    }
}

/// A list that may also come as one string separated by spaces (Mastodon's `redirect_uris`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Words(pub Vec<String>);

impl Lenient for Option<Words> {
    const KIND: ParamKind = ParamKind::List;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(opt_list_or_separated(d)?.map(Words))
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        for v in self.iter().flat_map(|w| &w.0) {
            out.push((format!("{name}[]"), v.clone()));
        }
    }
}

/// Text the sidecar sends to the server in an HTTP header (`idempotency_key` as `Idempotency-Key`,
/// an inline `access_token` as `Authorization`, an inline `instance` as `Host`). A control character
/// there (CR, LF, NUL, TAB, DEL, C1; also when it arrived as an XML character reference such as
/// `&#10;`) would split the header or be refused by the HTTP library when sending, so it is refused
/// where the parameter is read, as `invalid_request` naming the parameter, in every format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderText(pub String);

/// Like [`HeaderText`], for a secret (never printed, not even in part).
#[derive(Clone, Debug)]
pub struct HeaderSecret(pub SecretString);

/// `text`, unless it holds a control character: the error says which and where, not the text.
pub fn header_safe<E: de::Error>(text: String) -> Result<String, E> {
    match text.chars().enumerate().find(|(_, c)| c.is_control()) {
        None => Ok(text),
        Some((at, c)) => Err(E::custom(format!(
            "holds the control character U+{:04X} (character {}); it is sent in an HTTP header, so it must be printable text",
            c as u32,
            at + 1
        ))),
    }
}

impl Lenient for Option<HeaderText> {
    const KIND: ParamKind = ParamKind::Text;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_string(d)?
            .map(|s| header_safe(s).map(HeaderText))
            .transpose()
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        if let Some(v) = self {
            out.push((name.to_owned(), v.0.clone()));
        }
    }
}

impl Lenient for Option<HeaderSecret> {
    const KIND: ParamKind = ParamKind::Text;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        opt_string(d)?
            .filter(|s| !s.is_empty())
            .map(|s| header_safe(s).map(|s| HeaderSecret(SecretString::from(s))))
            .transpose()
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        use secrecy::ExposeSecret;
        if let Some(v) = self {
            out.push((name.to_owned(), v.0.expose_secret().to_owned()));
        }
    }
}

/// A file's bytes as base64 text (a media upload's `data`), decoded only where it is written into
/// the upload's body ([`Base64::decode_into`]), so a large file is never held decoded twice. Its
/// `Debug` gives the length alone: a file is the caller's content, not a log line.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Base64(pub String);

impl std::fmt::Debug for Base64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Base64({} characters)", self.0.len())
    }
}

impl Base64 {
    /// The most bytes the text decodes to (whitespace included in the count: an upper bound).
    pub fn decoded_len_bound(&self) -> usize {
        self.0.len().div_ceil(4) * 3
    }

    /// The first bytes of the file (up to 64), for telling its type; empty when they do not decode.
    pub fn head_bytes(&self) -> Vec<u8> {
        let head: String = self
            .0
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .take(88)
            .collect();
        let mut out = bytes::BytesMut::new();
        // 88 characters are whole groups of four; a shorter text is the whole file.
        match Base64(head).decode_into(&mut out) {
            Ok(_) => out.to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// Decodes into the end of `out`: standard or URL-safe alphabet, padded or not, with whitespace
    /// (line breaks from XML tools and MI's `base64Encode`) skipped. The error says where it stopped,
    /// never what it read.
    pub fn decode_into(&self, out: &mut bytes::BytesMut) -> Result<usize, String> {
        use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
        use base64::engine::DecodePaddingMode;
        use base64::Engine as _;
        const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true);
        const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
        const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
        let text = self.0.as_bytes();
        let url_safe = text.iter().any(|b| matches!(b, b'-' | b'_'));
        let engine = if url_safe { &URL_SAFE } else { &STANDARD };
        let start = out.len();
        // In chunks of 4 × 4096 significant characters, so that whitespace is skipped without a
        // second copy of the whole text.
        let mut chunk = Vec::with_capacity(16_384);
        let mut significant = text.iter().copied().filter(|b| !b.is_ascii_whitespace());
        loop {
            chunk.clear();
            chunk.extend(significant.by_ref().take(16_384));
            if chunk.is_empty() {
                break;
            }
            let at = out.len();
            out.resize(at + chunk.len().div_ceil(4) * 3, 0);
            match engine.decode_slice(&chunk, &mut out[at..]) {
                Ok(n) => out.truncate(at + n),
                Err(e) => {
                    out.truncate(start);
                    let what = match e {
                        base64::DecodeSliceError::DecodeError(
                            base64::DecodeError::InvalidByte(i, _),
                        ) => format!(
                            "an invalid character at about position {}",
                            at - start + i + 1
                        ),
                        base64::DecodeSliceError::DecodeError(
                            base64::DecodeError::InvalidLength(_),
                        ) => "a length that is not whole base64".to_owned(),
                        base64::DecodeSliceError::DecodeError(
                            base64::DecodeError::InvalidPadding,
                        ) => "padding inside the text".to_owned(),
                        other => format!("{}", other).chars().take(80).collect(),
                    };
                    return Err(format!("is not base64: {what}"));
                }
            }
            // Padding ends the text: anything significant after a chunk that held it is refused.
            if chunk.contains(&b'=') && significant.clone().next().is_some() {
                out.truncate(start);
                return Err("is not base64: text after its padding".to_owned());
            }
        }
        Ok(out.len() - start)
    }
}

impl Lenient for Option<Base64> {
    const KIND: ParamKind = ParamKind::Binary;
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(opt_string(d)?.filter(|s| !s.is_empty()).map(Base64))
    }
    /// Never written into a form or a query: a file goes into a multipart body of its own.
    fn write(&self, _name: &str, _out: &mut Vec<(String, String)>) {}
}

/// Named parameters of their own (`poll`): written as `name[field]`.
impl<T: Params + serde::de::DeserializeOwned> Lenient for Option<T> {
    const KIND: ParamKind = ParamKind::Object(T::PARAMS);
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            // An empty XML element stands for nothing given.
            Value::String(s) if s.is_empty() => Ok(None),
            v => read_object::<T, D::Error>(v).map(Some),
        }
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        if let Some(v) = self {
            v.write(name, out);
        }
    }
}

/// One object of named parameters, its required ones checked first.
fn read_object<T: Params + serde::de::DeserializeOwned, E: de::Error>(v: Value) -> Result<T, E> {
    // Only an object: serde would also fill a struct from a list, field by field in order, which
    // would read `[["a","b"], 300]` (or a repeated XML element) as a poll by guessing.
    if !v.is_object() {
        return Err(E::custom(format!(
            "expected an object of named parameters, found {}",
            describe(&v)
        )));
    }
    if let Some(missing) = missing_required(T::PARAMS, &v) {
        return Err(E::custom(format!("missing field `{missing}`")));
    }
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // Name the field within the object (`poll.expires_in`): `operations::parse` joins a path
        // given as `in `field`: ` to its own. Unknown and missing fields name themselves already.
        if path.is_empty()
            || path == "."
            || message.starts_with("unknown field")
            || message.starts_with("missing field")
        {
            E::custom(message)
        } else {
            E::custom(format!("{NESTED}{path}`: {message}"))
        }
    })
}

/// How [`read_object`] names a field within an object, for `operations::parse` to join.
pub const NESTED: &str = "in `";

/// A list of objects (`media` items): one object stands for a list of one, as XML repeats elements.
impl<T: Params + serde::de::DeserializeOwned> Lenient for Option<Vec<T>> {
    const KIND: ParamKind = ParamKind::Objects(T::PARAMS);
    fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = match Value::deserialize(d)? {
            Value::Null => return Ok(None),
            Value::Array(items) => items,
            one => vec![one],
        };
        items
            .into_iter()
            .map(read_object::<T, D::Error>)
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
    fn write(&self, name: &str, out: &mut Vec<(String, String)>) {
        for (i, v) in self.iter().flatten().enumerate() {
            v.write(&format!("{name}[{i}]"), out);
        }
    }
}

/// Declares a parameter struct: the struct (read with the lenient readers above, unknown fields
/// refused) and its [`Params`] description, from one list of documented fields. A field followed
/// by `= required` must be present and not empty; everything else is optional.
///
/// ```ignore
/// params! {
///     pub struct GetStatusParams {
///         /// The configured connection
///         pub connection: Option<String>,
///         /// The status's id
///         pub id: String = required,
///     }
/// }
/// ```
macro_rules! params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $fvis:vis $field:ident : $ty:ty $(as $wire:literal)? $(= $flag:ident)?
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        $vis struct $name {
            $(
                $(#[doc = $doc])+
                #[serde(default, deserialize_with = "crate::operations::params::lenient")]
                $(#[serde(rename = $wire)])?
                $fvis $field: $ty,
            )*
        }

        impl crate::operations::params::Params for $name {
            const PARAMS: &'static [crate::operations::Param] = &[
                $(
                    crate::operations::Param {
                        name: $crate::operations::params::params!(@name $field $($wire)?),
                        kind: <$ty as crate::operations::params::Lenient>::KIND,
                        required: $crate::operations::params::params!(@required $($flag)?),
                        description: concat!($($doc),+).trim_ascii(),
                    },
                )*
            ];

            fn write(&self, prefix: &str, out: &mut Vec<(String, String)>) {
                $(
                    let field = $crate::operations::params::params!(@name $field $($wire)?);
                    let name = if prefix.is_empty() {
                        field.to_owned()
                    } else {
                        format!("{prefix}[{field}]")
                    };
                    crate::operations::params::Lenient::write(&self.$field, &name, out);
                )*
            }
        }
    };
    (@required) => { false };
    (@required required) => { true };
    (@name $field:ident) => { stringify!($field) };
    (@name $field:ident $wire:literal) => { $wire };
}
pub(crate) use params;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    struct P {
        #[serde(default, deserialize_with = "opt_bool")]
        b: Option<bool>,
        #[serde(default, deserialize_with = "opt_u64")]
        n: Option<u64>,
        #[serde(default, deserialize_with = "opt_list")]
        l: Option<Vec<String>>,
        #[serde(default, deserialize_with = "opt_string")]
        s: Option<String>,
    }

    #[test]
    fn xml_text_and_mi_guesses_are_read_as_the_field_type() {
        let p: P =
            serde_json::from_value(json!({"b": "true", "n": "300", "l": "7", "s": 12})).unwrap();
        assert_eq!(p.b, Some(true));
        assert_eq!(p.n, Some(300));
        assert_eq!(p.l, Some(vec!["7".to_owned()]));
        assert_eq!(p.s.as_deref(), Some("12"));
        let p: P = serde_json::from_value(json!({"l": [1, "2"]})).unwrap();
        assert_eq!(p.l, Some(vec!["1".to_owned(), "2".to_owned()]));
    }

    #[test]
    fn ambiguous_values_are_refused() {
        assert!(serde_json::from_value::<P>(json!({"b": "yes"})).is_err());
        assert!(serde_json::from_value::<P>(json!({"n": "3.5"})).is_err());
        assert!(serde_json::from_value::<P>(json!({"n": -1})).is_err());
        assert!(serde_json::from_value::<P>(json!({"s": {"a": 1}})).is_err());
    }
}
