//! `multipart/form-data` bodies for media uploads, encoded once, as a few chunks.
//!
//! A base64 file is decoded straight into the body's buffer, so it is held once, not as a decoded copy
//! plus an encoded body. A file that came as raw bytes (a multipart part of the caller's own request)
//! is not copied at all: it becomes a chunk of its own between the heads and the tail. The finished
//! chunks are `Bytes`, shared by every attempt of the request.

use bytes::{BufMut, Bytes, BytesMut};

/// A body being encoded: text parts, then at most one file part.
pub struct Multipart {
    boundary: String,
    buf: BytesMut,
    /// The chunks finished so far, in order; `buf` follows them.
    done: Vec<Bytes>,
}

impl Multipart {
    /// `capacity`: the expected size (the file's), to allocate once.
    pub fn new(capacity: usize) -> Multipart {
        Multipart {
            boundary: format!("sidecar-{}", uuid::Uuid::new_v4().simple()),
            buf: BytesMut::with_capacity(capacity + 1024),
            done: Vec::new(),
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

    /// The file part, its bytes as they are (not copied: a chunk of their own); then
    /// [`Multipart::finish`].
    pub fn file_bytes(&mut self, name: &str, file_name: &str, content_type: &str, data: Bytes) {
        self.head(name, Some((file_name, content_type)));
        self.done.push(self.buf.split().freeze());
        self.done.push(data);
    }

    /// Ends the body: its `Content-Type` (with the boundary) and its chunks, in order.
    pub fn finish(mut self) -> (String, Vec<Bytes>) {
        self.buf.put_slice(b"\r\n--");
        self.buf.put_slice(self.boundary.as_bytes());
        self.buf.put_slice(b"--\r\n");
        self.done.push(self.buf.freeze());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.done,
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
        let (content_type, parts) = m.finish();
        let body = parts.concat();
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\na cat\r\n"
        )));
        assert!(text
            .contains("name=\"file\"; filename=\"c_at.png\"\r\nContent-Type: image/png\r\n\r\n"));
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
    }

    #[test]
    fn raw_file_bytes_are_a_chunk_of_their_own_not_a_copy() {
        let file = Bytes::from_static(b"\x89PNG raw bytes");
        let mut m = Multipart::new(0);
        m.text("description", "a cat");
        m.file_bytes("file", "cat.png", "image/png", file.clone());
        let (content_type, parts) = m.finish();
        assert_eq!(parts.len(), 3);
        // The same memory, not an equal copy.
        assert_eq!(parts[1].as_ptr(), file.as_ptr());
        let boundary = content_type.split("boundary=").nth(1).unwrap();
        assert!(parts[0]
            .ends_with(b"name=\"file\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n"));
        assert_eq!(parts[2], format!("\r\n--{boundary}--\r\n").as_bytes());
    }
}
