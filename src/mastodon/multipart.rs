//! `multipart/form-data` bodies for media uploads, encoded once into one buffer.
//!
//! The file's bytes are written straight into the body (a base64 parameter is decoded into it), so a
//! large upload is held once, not as a decoded copy plus an encoded body; the finished `Bytes` is
//! shared by every attempt of the request.

use bytes::{BufMut, Bytes, BytesMut};

/// A body being encoded: text parts, then at most one file part.
pub struct Multipart {
    boundary: String,
    buf: BytesMut,
}

impl Multipart {
    /// `capacity`: the expected size (the file's), to allocate once.
    pub fn new(capacity: usize) -> Multipart {
        Multipart {
            boundary: format!("sidecar-{}", uuid::Uuid::new_v4().simple()),
            buf: BytesMut::with_capacity(capacity + 1024),
        }
    }

    /// A text part. Names and values come from the operation's own parameters; quotes and line
    /// breaks in a name are replaced so that they cannot end the header early.
    pub fn text(&mut self, name: &str, value: &str) {
        self.head(name, None);
        self.buf.put_slice(value.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    /// Starts the file part and answers the buffer its bytes are appended to; then
    /// [`Multipart::finish`].
    pub fn file(&mut self, name: &str, file_name: &str, content_type: &str) -> &mut BytesMut {
        self.head(name, Some((file_name, content_type)));
        &mut self.buf
    }

    /// Ends the body: its `Content-Type` (with the boundary) and the bytes.
    pub fn finish(mut self) -> (String, Bytes) {
        self.buf.put_slice(b"\r\n--");
        self.buf.put_slice(self.boundary.as_bytes());
        self.buf.put_slice(b"--\r\n");
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.buf.freeze(),
        )
    }

    fn head(&mut self, name: &str, file: Option<(&str, &str)>) {
        // A text part follows a file part only if called out of order; each part ends with CRLF.
        self.buf.put_slice(b"--");
        self.buf.put_slice(self.boundary.as_bytes());
        self.buf
            .put_slice(b"\r\nContent-Disposition: form-data; name=\"");
        self.buf.put_slice(safe(name).as_bytes());
        self.buf.put_slice(b"\"");
        if let Some((file_name, content_type)) = file {
            self.buf.put_slice(b"; filename=\"");
            self.buf.put_slice(safe(file_name).as_bytes());
            self.buf.put_slice(b"\"\r\nContent-Type: ");
            self.buf.put_slice(safe(content_type).as_bytes());
        }
        self.buf.put_slice(b"\r\n\r\n");
    }
}

/// A header value without what could end it: quotes, backslashes, control characters.
fn safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '"' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_has_its_parts_between_boundaries() {
        let mut m = Multipart::new(4);
        m.text("description", "a cat");
        m.file("file", "c\"at.png", "image/png")
            .put_slice(b"\x89PNG");
        let (content_type, body) = m.finish();
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\na cat\r\n"
        )));
        assert!(text
            .contains("name=\"file\"; filename=\"c_at.png\"\r\nContent-Type: image/png\r\n\r\n"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }
}
