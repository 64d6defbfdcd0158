//! The durable form of a run's progress history and of its request: protobuf
//! messages, length-delimited one after another, as the `binaryData` of the run's
//! record. The same encoding the gRPC API uses, so nothing is translated twice and a
//! field added to the proto is kept without code here.

use prost::Message;

use crate::proto::{PipelineProgress, PipelineRequest};

/// `history` as bytes.
pub fn encode(history: &[PipelineProgress]) -> Vec<u8> {
    let mut out = Vec::with_capacity(history.iter().map(|p| p.encoded_len() + 2).sum());
    for p in history {
        // Writing into a Vec cannot run out of room.
        p.encode_length_delimited(&mut out)
            .expect("a Vec grows as needed");
    }
    out
}

/// The history in `bytes`; an error names the message that does not decode.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<PipelineProgress>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let p = PipelineProgress::decode_length_delimited(&mut bytes)
            .map_err(|e| format!("progress message {}: {e}", out.len() + 1))?;
        out.push(p);
    }
    Ok(out)
}

/// A run's request as bytes.
pub fn encode_request(r: &PipelineRequest) -> Vec<u8> {
    r.encode_to_vec()
}

/// The request in `bytes`.
pub fn decode_request(bytes: &[u8]) -> Result<PipelineRequest, String> {
    PipelineRequest::decode(bytes).map_err(|e| format!("the recorded request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, stage: &str, message: &str) -> PipelineProgress {
        PipelineProgress {
            seq,
            run_id: "r".into(),
            stage: stage.into(),
            message: message.into(),
            timestamp_unix_ms: 1_700_000_000_000 + i64::try_from(seq).unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn round_trips() {
        let cases: Vec<Vec<PipelineProgress>> = vec![
            vec![],
            vec![msg(1, "", "run started")],
            vec![
                msg(1, "", "run started"),
                msg(2, "build", "queued, position 0"),
                msg(3, "build", &"x".repeat(300)),
                PipelineProgress {
                    r#final: true,
                    ..msg(4, "", "run succeeded")
                },
            ],
        ];
        for h in cases {
            assert_eq!(decode(&encode(&h)).unwrap(), h);
        }
    }

    #[test]
    fn a_truncated_history_names_the_broken_message() {
        let bytes = encode(&[msg(1, "", "a"), msg(2, "b", "second")]);
        let err = decode(&bytes[..bytes.len() - 3]).unwrap_err();
        assert!(err.starts_with("progress message 2:"), "{err}");
    }

    #[test]
    fn requests_round_trip_and_garbage_is_refused() {
        let r = PipelineRequest {
            pipeline_name: "ci".into(),
            run_id: "r-1".into(),
            timeout_seconds: 60,
            ..Default::default()
        };
        assert_eq!(decode_request(&encode_request(&r)).unwrap(), r);
        assert!(decode_request(&[0xff, 0xff, 0xff]).is_err());
    }
}
