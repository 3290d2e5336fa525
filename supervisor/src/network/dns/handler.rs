//! One container's resolver: its networks' names from the table, reverse names of their
//! addresses, and everything else forwarded upstream.
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, PTR};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::table::{self, Answer};
use crate::network::NetworkService;

/// docker's TTL for container names.
const TTL: u32 = 600;

/// Serves the queries of the container `container`.
pub struct Handler {
    pub container: String,
    pub networks: Arc<NetworkService>,
    /// Where other names go (the container's `--dns`, or the host's servers).
    pub upstreams: Vec<SocketAddr>,
}

/// What to send back.
enum Reply {
    Records(Vec<Record>),
    Code(ResponseCode),
    Upstream(hickory_server::proto::op::Message),
}

impl Handler {
    async fn reply(&self, request: &Request) -> Reply {
        if request.metadata.op_code != OpCode::Query {
            return Reply::Code(ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            return Reply::Code(ResponseCode::FormErr);
        };
        let name: Name = info.query.name().into();
        let qtype = info.query.query_type();
        if qtype == RecordType::PTR {
            if let Some(r) = self.reverse(&name) {
                return r;
            }
        } else {
            let answer = self
                .networks
                .with_networks(|n| table::lookup(n, &self.container, &name.to_ascii()));
            match answer {
                Answer::Addresses(ips) => return Reply::Records(a_records(&name, qtype, &ips)),
                Answer::NoSuchName => return Reply::Code(ResponseCode::NXDomain),
                Answer::Elsewhere => {}
            }
        }
        match super::forward::forward(request.as_slice(), request.metadata.id, &self.upstreams)
            .await
        {
            Ok(m) => Reply::Upstream(m),
            Err(e) => {
                tracing::debug!(container = %self.container, name = %name, error = %e, "forward");
                Reply::Code(ResponseCode::ServFail)
            }
        }
    }

    /// A PTR query for one of the asker's networks' addresses, answered here.
    fn reverse(&self, name: &Name) -> Option<Reply> {
        let net = name.parse_arpa_name().ok()?;
        let std::net::IpAddr::V4(ip) = net.addr() else {
            return None;
        };
        if net.prefix_len() != 32 {
            return None;
        }
        let (found, local) = self
            .networks
            .with_networks(|n| table::reverse(n, &self.container, ip));
        match (found, local) {
            (Some(target), _) => {
                let target = Name::from_ascii(format!("{target}.")).ok()?;
                Some(Reply::Records(vec![Record::from_rdata(
                    name.clone(),
                    TTL,
                    RData::PTR(PTR(target)),
                )]))
            }
            (None, true) => Some(Reply::Code(ResponseCode::NXDomain)),
            (None, false) => None,
        }
    }
}

/// The A (and, on IPv6 networks, AAAA) records of a local name; other types of a local name
/// have none (NOERROR, empty), so that a resolver asking AAAA then A does not give up.
fn a_records(name: &Name, qtype: RecordType, ips: &[IpAddr]) -> Vec<Record> {
    let any = qtype == RecordType::ANY;
    ips.iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(ip) if any || qtype == RecordType::A => Some(RData::A(A(*ip))),
            IpAddr::V6(ip) if any || qtype == RecordType::AAAA => Some(RData::AAAA(AAAA(*ip))),
            _ => None,
        })
        .map(|data| Record::from_rdata(name.clone(), TTL, data))
        .collect()
}

fn failed(metadata: Metadata) -> ResponseInfo {
    let mut metadata = metadata;
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let reply = self.reply(request).await;
        let mut builder = MessageResponseBuilder::from_message_request(request);
        if let Some(edns) = &request.edns {
            builder.edns(edns);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = true;
        let none: [Record; 0] = [];
        let sent = match &reply {
            Reply::Records(records) => {
                metadata.authoritative = true;
                let m = builder.build(
                    metadata,
                    records.iter(),
                    none.iter(),
                    none.iter(),
                    none.iter(),
                );
                response.send_response(m).await
            }
            Reply::Code(code) => {
                metadata.response_code = *code;
                metadata.authoritative = *code == ResponseCode::NXDomain;
                let m = builder.build_no_records(metadata);
                response.send_response(m).await
            }
            Reply::Upstream(up) => {
                metadata.response_code = up.metadata.response_code;
                metadata.truncation = up.metadata.truncation;
                metadata.authentic_data = up.metadata.authentic_data;
                let m = builder.build(
                    metadata,
                    up.answers.iter(),
                    up.authorities.iter(),
                    none.iter(),
                    up.additionals.iter(),
                );
                response.send_response(m).await
            }
        };
        sent.unwrap_or_else(|e| {
            tracing::debug!(container = %self.container, error = %e, "DNS reply");
            failed(metadata)
        })
    }
}
