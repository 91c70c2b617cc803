//! A minimal MQTT client connection on Tollgate's codec: connect, queue packets into a write
//! buffer, flush them in one write, read and decode what the broker sends.
//!
//! Publishes are encoded from a template with only the packet identifier and the payload
//! header changing per message, straight into the write buffer (no allocation per message).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::stream::Stream;
use crate::tls::TlsSettings;
use tollgate_mqtt::{
    encode, encode_publish_with, Ack, Auth, AuthProperties, ConnAck, Connect, ConnectProperties,
    DecodeError, Decoder, Disconnect, EncodeError, Packet, ProtocolVersion, Publish,
    PublishOverrides, QoS, ReasonCode, Role, Subscribe, Subscription, SubscriptionOptions,
};

/// Bytes asked of the socket per read, at least.
const READ_CHUNK: usize = 64 * 1024;

/// How long a client waits for the broker to close after DISCONNECT.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection needs to know to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Client identifier.
    pub client_id: String,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<Bytes>,
    /// Keep alive in seconds (0: off).
    pub keep_alive: u16,
    /// Receive maximum announced to the broker (5.0): how many QoS 1/2 messages it may have
    /// in flight towards this client.
    pub receive_maximum: Option<u16>,
    /// Largest packet accepted from the broker.
    pub maximum_packet_size: u32,
    /// TLS, when the broker's listener speaks it.
    pub tls: Option<TlsSettings>,
    /// A persistent session: clean start 0 (5.0: session expiry one hour).
    pub persistent: bool,
    /// A SCRAM login in place of the user name and password in CONNECT.
    pub scram: Option<std::sync::Arc<crate::scram::ScramLogin>>,
    /// An RFC 9431 `ace` login in place of the user name and password in CONNECT.
    pub ace: Option<std::sync::Arc<crate::ace::AceLogin>>,
}

/// Why a connection failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket failed.
    Io(io::Error),
    /// The broker sent bytes that do not decode.
    Decode(DecodeError),
    /// A packet could not be encoded (a bug in the caller).
    Encode(EncodeError),
    /// CONNACK or SUBACK refused, with its code.
    Refused(&'static str, ReasonCode),
    /// The broker sent DISCONNECT (5.0) with this reason.
    Disconnected(ReasonCode),
    /// The broker sent something it should not have at this point.
    Protocol(String),
    /// The broker closed the connection.
    Closed,
    /// A step took longer than allowed.
    Timeout(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "socket: {e}"),
            ClientError::Decode(e) => write!(f, "decode: {e:?}"),
            ClientError::Encode(e) => write!(f, "encode: {e:?}"),
            ClientError::Refused(what, code) => write!(f, "{what} refused: 0x{:02x}", code.0),
            ClientError::Disconnected(code) => write!(f, "broker sent DISCONNECT 0x{:02x}", code.0),
            ClientError::Protocol(m) => write!(f, "protocol: {m}"),
            ClientError::Closed => write!(f, "broker closed the connection"),
            ClientError::Timeout(what) => write!(f, "timed out waiting for {what}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        ClientError::Decode(e)
    }
}

impl From<EncodeError> for ClientError {
    fn from(e: EncodeError) -> Self {
        ClientError::Encode(e)
    }
}

/// One connected MQTT client.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
    version: ProtocolVersion,
    server_receive_maximum: u16,
}

impl Client {
    /// Connects to `addr`, sends CONNECT and waits for a successful CONNACK (within `timeout`).
    pub async fn connect(
        addr: SocketAddr,
        opts: &ConnectOptions,
        timeout: Duration,
    ) -> Result<(Client, ConnAck), ClientError> {
        tokio::time::timeout(timeout, Self::connect_inner(addr, opts))
            .await
            .map_err(|_| ClientError::Timeout("CONNACK"))?
    }

    async fn connect_inner(
        addr: SocketAddr,
        opts: &ConnectOptions,
    ) -> Result<(Client, ConnAck), ClientError> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match &opts.tls {
            None => Stream::Plain(tcp),
            Some(tls) => Stream::Tls(Box::new(
                tls.connector.connect(tls.server_name.clone(), tcp).await?,
            )),
        };
        let mut client = Client {
            stream,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            decoder: Decoder {
                role: Role::Client,
                version: opts.version,
                maximum_packet_size: opts.maximum_packet_size,
            },
            version: opts.version,
            server_receive_maximum: u16::MAX,
        };
        let scram = opts.scram.as_ref().map(|login| (login, login.first()));
        let (username, password) = match (&scram, &opts.ace) {
            (None, None) => (opts.username.clone(), opts.password.clone()),
            _ => (None, None),
        };
        let (method, data) = match (&scram, &opts.ace) {
            (Some((login, (_, first))), _) => (
                Some(login.method().to_owned()),
                Some(Bytes::from(first.clone())),
            ),
            (None, Some(ace)) => (
                Some("ace".to_owned()),
                Some(Bytes::from(ace.connect_data())),
            ),
            (None, None) => (None, None),
        };
        let connect = Connect {
            protocol: opts.version,
            clean_start: !opts.persistent,
            keep_alive: opts.keep_alive,
            client_id: opts.client_id.clone(),
            will: None,
            username,
            password,
            properties: ConnectProperties {
                authentication_method: method,
                authentication_data: data,
                receive_maximum: opts.receive_maximum.filter(|_| opts.version.is_v5()),
                maximum_packet_size: Some(opts.maximum_packet_size)
                    .filter(|_| opts.version.is_v5()),
                session_expiry_interval: Some(3600)
                    .filter(|_| opts.persistent && opts.version.is_v5()),
                ..ConnectProperties::default()
            },
        };
        client.queue(&Packet::Connect(Box::new(connect)))?;
        client.flush().await?;
        let mut answer = client.recv().await?;
        if let Some((login, (mut exchange, _))) = scram {
            let Packet::Auth(challenge) = answer else {
                return Err(match answer {
                    Packet::ConnAck(ack) => ClientError::Refused("CONNECT", ack.reason_code),
                    other => ClientError::Protocol(format!(
                        "expected AUTH, got packet type {}",
                        other.packet_type()
                    )),
                });
            };
            let server_first = challenge.properties.authentication_data.unwrap_or_default();
            let client_final = login
                .answer(&mut exchange, &server_first)
                .map_err(ClientError::Protocol)?;
            client.queue(&Packet::Auth(Auth {
                reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: AuthProperties {
                    authentication_method: Some(login.method().into()),
                    authentication_data: Some(Bytes::from(client_final)),
                    ..AuthProperties::default()
                },
            }))?;
            client.flush().await?;
            answer = client.recv().await?;
            if let Packet::ConnAck(ack) = &answer {
                let server_final = ack
                    .properties
                    .authentication_data
                    .clone()
                    .unwrap_or_default();
                if ack.reason_code == ReasonCode::SUCCESS
                    && !login.broker_proved(&exchange, &server_final)
                {
                    return Err(ClientError::Protocol(
                        "the broker's SCRAM signature is wrong".into(),
                    ));
                }
            }
        }
        if let Some(ace) = &opts.ace {
            if let Packet::Auth(challenge) = &answer {
                let nonce = challenge
                    .properties
                    .authentication_data
                    .clone()
                    .unwrap_or_default();
                let data = ace.answer(&nonce).map_err(ClientError::Protocol)?;
                client.queue(&Packet::Auth(Auth {
                    reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                    properties: AuthProperties {
                        authentication_method: Some("ace".into()),
                        authentication_data: Some(Bytes::from(data)),
                        ..AuthProperties::default()
                    },
                }))?;
                client.flush().await?;
                answer = client.recv().await?;
            }
        }
        match answer {
            Packet::ConnAck(ack) if ack.reason_code == ReasonCode::SUCCESS => {
                if let Some(max) = ack.properties.receive_maximum {
                    client.server_receive_maximum = max;
                }
                Ok((client, ack))
            }
            Packet::ConnAck(ack) => Err(ClientError::Refused("CONNECT", ack.reason_code)),
            other => Err(ClientError::Protocol(format!(
                "expected CONNACK, got packet type {}",
                other.packet_type()
            ))),
        }
    }

    /// The protocol version of this connection.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The broker's receive maximum (5.0 CONNACK), `u16::MAX` when it announced none.
    pub fn server_receive_maximum(&self) -> u16 {
        self.server_receive_maximum
    }

    /// Appends `packet` to the write buffer.
    pub fn queue(&mut self, packet: &Packet) -> Result<(), ClientError> {
        encode(packet, self.version, &mut self.wbuf)?;
        Ok(())
    }

    /// Appends a PUBLISH made from `template` with `qos` and `packet_id`, and returns its
    /// payload bytes in the write buffer so the caller can stamp them.
    pub fn queue_publish(
        &mut self,
        template: &Publish,
        qos: QoS,
        packet_id: Option<u16>,
    ) -> Result<&mut [u8], ClientError> {
        let overrides = PublishOverrides {
            dup: false,
            qos,
            retain: false,
            packet_id,
            topic_alias: None,
            omit_topic: false,
            message_expiry_interval: None,
            subscription_identifiers: &[],
        };
        encode_publish_with(template, &overrides, self.version, &mut self.wbuf)?;
        let end = self.wbuf.len();
        Ok(&mut self.wbuf[end - template.payload.len()..end])
    }

    /// Bytes waiting in the write buffer.
    pub fn pending_write(&self) -> usize {
        self.wbuf.len()
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<(), ClientError> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Reads whatever the socket has (waiting for at least one byte). Cancel-safe: if the
    /// future is dropped before it completes, nothing was read.
    pub async fn fill(&mut self) -> Result<(), ClientError> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        match self.stream.read_buf(&mut self.rbuf).await? {
            0 => Err(ClientError::Closed),
            _ => Ok(()),
        }
    }

    /// Decodes the next whole packet already read, if there is one.
    pub fn try_decode(&mut self) -> Result<Option<Packet>, ClientError> {
        Ok(self.decoder.decode(&mut self.rbuf)?)
    }

    /// Waits for the next packet.
    pub async fn recv(&mut self) -> Result<Packet, ClientError> {
        loop {
            if let Some(packet) = self.try_decode()? {
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    /// Subscribes to one filter and waits for the SUBACK; fails unless the broker grants a
    /// QoS (any, the granted one is returned).
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
        timeout: Duration,
    ) -> Result<QoS, ClientError> {
        let subscribe = Subscribe {
            packet_id: 1,
            properties: Default::default(),
            subscriptions: vec![Subscription {
                filter: filter.to_owned(),
                options: SubscriptionOptions {
                    qos,
                    ..Default::default()
                },
            }],
        };
        self.queue(&Packet::Subscribe(subscribe))?;
        self.flush().await?;
        let packet = tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| ClientError::Timeout("SUBACK"))??;
        match packet {
            Packet::SubAck(ack) => {
                let code = ack.reason_codes.first().copied().unwrap_or_default();
                QoS::from_u8(code.0).ok_or(ClientError::Refused("SUBSCRIBE", code))
            }
            other => Err(ClientError::Protocol(format!(
                "expected SUBACK, got packet type {}",
                other.packet_type()
            ))),
        }
    }

    /// Queues an acknowledgement (`PubAck`, `PubRec`, `PubRel`, `PubComp`) for `packet_id`.
    pub fn queue_ack(
        &mut self,
        kind: fn(Ack) -> Packet,
        packet_id: u16,
    ) -> Result<(), ClientError> {
        self.queue(&kind(Ack {
            packet_id,
            ..Ack::default()
        }))
    }

    /// Sends DISCONNECT, then waits (bounded) for the broker to close its side, so that the
    /// broker has processed the whole session before this returns.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        self.queue(&Packet::Disconnect(Disconnect::default()))?;
        self.flush().await?;
        let _ = self.stream.shutdown().await;
        let mut sink = [0u8; 512];
        let wait = async {
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        };
        tokio::time::timeout(CLOSE_TIMEOUT, wait)
            .await
            .map_err(|_| ClientError::Timeout("the broker to close"))
    }
}
