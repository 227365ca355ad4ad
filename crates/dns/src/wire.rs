//! Sending one DNS message and reading its answer: queries over UDP (TCP when the answer is
//! truncated), updates over TCP.
//!
//! Updates go over TCP because it needs no retransmission logic for a signed, state-changing
//! request and carries answers of any size; queries go over UDP because the propagation check
//! sends many of them. Every exchange is bounded by one deadline, so a server that swallows
//! packets costs at most the configured timeout, and errors name the server.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::error::DnsError;

/// A UDP query is sent again when no answer came within this long (and the deadline allows).
const RESEND_AFTER: Duration = Duration::from_secs(1);
/// The EDNS payload size advertised in queries (the DNS flag day 2020 value).
const EDNS_PAYLOAD: u16 = 1232;

/// Parse `text` as an absolute DNS name (a trailing dot is optional).
pub(crate) fn parse_name(text: &str) -> Result<Name, DnsError> {
    let mut name = Name::from_ascii(text).map_err(|err| DnsError::InvalidName {
        name: text.to_owned(),
        reason: err.to_string(),
    })?;
    name.set_fqdn(true);
    Ok(name)
}

/// `name` with its trailing dot, lower case: the form used in keys and messages.
pub(crate) fn display_name(name: &Name) -> String {
    name.to_lowercase().to_ascii()
}

/// Ask `server` about `name`/`rtype`. `recursion` sets the RD flag: on for resolvers,
/// off when asking an authoritative server what it has itself.
pub(crate) async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recursion: bool,
    timeout: Duration,
) -> Result<Message, DnsError> {
    let deadline = Instant::now() + timeout;
    let mut request = Message::new();
    request
        .set_id(rand::random())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(recursion);
    request.add_query(Query::query(name.clone(), rtype));
    request
        .extensions_mut()
        .get_or_insert_with(Edns::new)
        .set_max_payload(EDNS_PAYLOAD)
        .set_version(0);
    let bytes = encode(&request)?;

    let mut answer = parse(
        server,
        &udp(server, &bytes, request.id(), deadline, timeout).await?,
    )?;
    if answer.truncated() {
        answer = parse(server, &tcp(server, &bytes, deadline, timeout).await?)?;
    }
    check_answer(server, &request, &answer)?;
    Ok(answer)
}

/// `message` as bytes.
pub(crate) fn encode(message: &Message) -> Result<Vec<u8>, DnsError> {
    message.to_vec().map_err(|err| DnsError::Message {
        reason: err.to_string(),
    })
}

/// `bytes` as a message from `server`.
pub(crate) fn parse(server: SocketAddr, bytes: &[u8]) -> Result<Message, DnsError> {
    Message::from_vec(bytes).map_err(|err| DnsError::Malformed {
        server,
        reason: err.to_string(),
    })
}

/// The answer belongs to the request: a response, same id, same question.
pub(crate) fn check_answer(
    server: SocketAddr,
    request: &Message,
    answer: &Message,
) -> Result<(), DnsError> {
    let malformed = |reason: &str| DnsError::Malformed {
        server,
        reason: reason.to_owned(),
    };
    if answer.message_type() != MessageType::Response {
        return Err(malformed("not a response"));
    }
    if answer.id() != request.id() {
        return Err(malformed("the answer's id does not match the request"));
    }
    // A FORMERR may come without the question; any other answer repeats it.
    if answer.response_code() != ResponseCode::FormErr && answer.queries() != request.queries() {
        return Err(malformed("the answer is for another question"));
    }
    Ok(())
}

/// One UDP exchange, resent every [`RESEND_AFTER`] until `deadline`. Answers with another
/// id are ignored (late answers to an earlier send are not: they carry the same id).
async fn udp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, DnsError> {
    let unreachable = |source: io::Error| DnsError::Unreachable { server, source };
    let local: SocketAddr = if server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0_u16; 8], 0))
    };
    let socket = UdpSocket::bind(local).await.map_err(unreachable)?;
    // Connected, so ICMP port unreachable surfaces as ECONNREFUSED instead of silence.
    socket.connect(server).await.map_err(unreachable)?;
    let mut buffer = vec![0_u8; usize::from(u16::MAX)];
    loop {
        if Instant::now() >= deadline {
            return Err(DnsError::Timeout { server, timeout });
        }
        socket.send(request).await.map_err(unreachable)?;
        let resend = deadline.min(Instant::now() + RESEND_AFTER);
        loop {
            match tokio::time::timeout_at(resend, socket.recv(&mut buffer)).await {
                Err(_elapsed) => break,
                Ok(Err(err)) => return Err(unreachable(err)),
                Ok(Ok(read)) => {
                    let answer = &buffer[..read];
                    if answer.len() >= 2 && u16::from_be_bytes([answer[0], answer[1]]) == id {
                        return Ok(answer.to_vec());
                    }
                }
            }
        }
    }
}

/// One TCP exchange (RFC 1035 section 4.2.2: two length bytes, then the message).
pub(crate) async fn tcp(
    server: SocketAddr,
    request: &[u8],
    deadline: Instant,
    timeout: Duration,
) -> Result<Vec<u8>, DnsError> {
    let length = u16::try_from(request.len()).map_err(|_| DnsError::Message {
        reason: "the message is longer than 65535 bytes".to_owned(),
    })?;
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await?;
        let mut length = [0_u8; 2];
        stream.read_exact(&mut length).await?;
        let mut answer = vec![0_u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut answer).await?;
        Ok::<_, io::Error>(answer)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Err(_elapsed) => Err(DnsError::Timeout { server, timeout }),
        Ok(Err(source)) => Err(DnsError::Unreachable { server, source }),
        Ok(Ok(answer)) => Ok(answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_absolute_and_lower_case() {
        let name = parse_name("_acme-challenge.Example.TEST").expect("valid");
        assert!(name.is_fqdn());
        assert_eq!(display_name(&name), "_acme-challenge.example.test.");
        assert!(parse_name("bad..name").is_err());
    }

    #[tokio::test]
    async fn a_silent_server_times_out_within_the_deadline() {
        // Bound and never read: datagrams are swallowed.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let server = silent.local_addr().expect("address");
        let started = Instant::now();
        let err = query(
            server,
            &parse_name("example.test").expect("name"),
            RecordType::SOA,
            false,
            Duration::from_millis(300),
        )
        .await
        .expect_err("no answer");
        assert!(matches!(err, DnsError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable() {
        let closed = {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
            socket.local_addr().expect("address")
        };
        let err = query(
            closed,
            &parse_name("example.test").expect("name"),
            RecordType::SOA,
            false,
            Duration::from_secs(2),
        )
        .await
        .expect_err("nobody listens");
        assert!(
            matches!(err, DnsError::Unreachable { .. } | DnsError::Timeout { .. }),
            "{err:?}"
        );
    }
}
