//! The system calls of the userspace data plane: the TUN device (with the
//! virtio-net header and TSO when the kernel has them) and batched UDP
//! (`sendmmsg`/`recvmmsg`, with UDP GSO and GRO when the kernel has them).
//!
//! What the kernel offers is probed once at start ([`Offloads`]); each
//! feature falls back on its own (and `HEARTH_OFFLOADS=off` turns them all
//! off, for tests of the fallback path and for kernels that misbehave).
//! Buffers are made once; nothing here allocates per packet.

#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use socket2::{SockAddr, SockAddrStorage};

use super::offload::VNET_HDR_LEN;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;
const IFF_VNET_HDR: libc::c_short = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_USO4: libc::c_uint = 0x20;
const TUN_F_USO6: libc::c_uint = 0x40;
const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;
const UDP_GRO: libc::c_int = 104;

/// Most datagrams in one `sendmmsg`/`recvmmsg`.
pub const BATCH: usize = 64;
/// Most segments the kernel takes in one UDP GSO send.
pub const MAX_GSO_SEGMENTS: usize = 64;
/// Most datagrams gathered before a send (a bound on the memory and the
/// latency a batch adds).
pub const MAX_HELD: usize = 256;
/// Most bytes in one UDP GSO send (under the 64 KiB IP limit with headers).
pub const MAX_GSO_BYTES: usize = 65_000;

/// What the kernel offers, as probed at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offloads {
    /// The TUN device speaks virtio-net headers with TCP segmentation.
    pub tun_tso: bool,
    /// ... and UDP segmentation (Linux 6.2 and later).
    pub tun_uso: bool,
    /// UDP segmentation offload on the underlay socket.
    pub udp_gso: bool,
    /// UDP receive coalescing on the underlay socket.
    pub udp_gro: bool,
}

impl Offloads {
    /// Whether the user turned offloads off (`HEARTH_OFFLOADS=off`).
    pub fn disabled_by_environment() -> bool {
        std::env::var("HEARTH_OFFLOADS").is_ok_and(|value| value == "off" || value == "0")
    }

    /// How `status` names them: "tun-tso tun-uso udp-gso udp-gro", or
    /// "none" on the fallback path.
    pub fn describe(&self) -> String {
        let names: Vec<&str> = [
            (self.tun_tso, "tun-tso"),
            (self.tun_uso, "tun-uso"),
            (self.udp_gso, "udp-gso"),
            (self.udp_gro, "udp-gro"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(" ")
        }
    }
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

#[repr(C)]
struct InterfaceRequest {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A TUN device, non-blocking, with or without virtio-net headers.
pub struct Tun {
    fd: OwnedFd,
    /// Whether every read and write carries a [`VNET_HDR_LEN`] header.
    vnet: bool,
}

impl Tun {
    /// Creates (or attaches to) TUN interface `name`; with `offloads`,
    /// asks for virtio-net headers and segmentation offloads and reports
    /// which the kernel took.
    pub fn open(name: &str, offloads: bool) -> io::Result<(Tun, bool, bool)> {
        Tun::open_with(name, offloads, offloads)
    }

    fn open_with(name: &str, vnet: bool, probe: bool) -> io::Result<(Tun, bool, bool)> {
        if name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the interface name is too long",
            ));
        }
        // SAFETY: a NUL-terminated path and plain flags.
        let raw = check(unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `raw` was just opened and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut request = InterfaceRequest {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI | libc::IFF_MULTI_QUEUE) as libc::c_short,
            _pad: [0; 22],
        };
        request.name[..name.len()].copy_from_slice(name.as_bytes());
        if vnet {
            request.flags |= IFF_VNET_HDR;
        }
        // SAFETY: TUNSETIFF reads an `ifreq`, which `InterfaceRequest` lays out.
        check(unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &request) })?;
        if !probe {
            return Ok((Tun { fd, vnet }, false, false));
        }
        let tso = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
        // SAFETY: TUNSETOFFLOAD takes its flags by value.
        let set = |flags: libc::c_uint| unsafe {
            libc::ioctl(fd.as_raw_fd(), TUNSETOFFLOAD as _, flags as libc::c_ulong) >= 0
        };
        let (tso_on, uso_on) = if set(tso | TUN_F_USO4 | TUN_F_USO6) {
            (true, true)
        } else if set(tso) {
            (true, false)
        } else {
            // Headers but no offloads: still correct, packets come one by one.
            (false, false)
        };
        Ok((Tun { fd, vnet: true }, tso_on, uso_on))
    }

    /// Attaches another queue to the multi-queue TUN interface `name`
    /// (made by [`Tun::open`], whose header choice `vnet` repeats).
    pub fn open_queue(name: &str, vnet: bool) -> io::Result<Tun> {
        let (tun, _, _) = Tun::open_with(name, vnet, false)?;
        Ok(tun)
    }

    /// Whether reads and writes carry a virtio-net header.
    pub fn vnet(&self) -> bool {
        self.vnet
    }

    /// Waits up to `timeout` for a packet to read.
    pub fn wait_readable(&self, timeout: std::time::Duration) -> io::Result<bool> {
        let mut poll = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let milliseconds = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, milliseconds) };
        match ready {
            ..0 => {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(error)
                }
            }
            0 => Ok(false),
            _ => Ok(true),
        }
    }

    /// Reads one packet (with its header, if any) into `buffer`.
    pub fn read(&self, buffer: &mut [u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for writes of its length.
        let read = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
            )
        };
        if read < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(read as usize)
        }
    }

    /// Writes `bytes` as one packet (with its header first, if any).
    pub fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: the buffer is valid for reads of its length.
        let written =
            unsafe { libc::write(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(written as usize)
        }
    }

    /// Writes one plain packet (behind a header saying "no offload" when
    /// the device takes headers).
    pub fn write_packet(&self, packet: &[u8]) -> io::Result<usize> {
        if !self.vnet {
            return self.write(packet);
        }
        const PLAIN: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];
        let parts = [
            libc::iovec {
                iov_base: PLAIN.as_ptr() as *mut libc::c_void,
                iov_len: PLAIN.len(),
            },
            libc::iovec {
                iov_base: packet.as_ptr() as *mut libc::c_void,
                iov_len: packet.len(),
            },
        ];
        // SAFETY: both buffers are valid for reads of their lengths, and
        // the kernel only reads them.
        let written = unsafe { libc::writev(self.fd.as_raw_fd(), parts.as_ptr(), 2) };
        if written < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(written as usize)
        }
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Probes and turns on UDP GSO and GRO on `socket`.
pub fn udp_offloads(socket: &UdpSocket, enable: bool) -> (bool, bool) {
    if !enable {
        return (false, false);
    }
    let fd = socket.as_raw_fd();
    let mut value: libc::c_int = 0;
    let mut length = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int-sized option read into an int.
    let gso = unsafe {
        libc::getsockopt(
            fd,
            SOL_UDP,
            UDP_SEGMENT,
            (&raw mut value).cast(),
            &mut length,
        ) == 0
    };
    let on: libc::c_int = 1;
    // SAFETY: an int-sized option from an int.
    let gro = unsafe {
        libc::setsockopt(
            fd,
            SOL_UDP,
            UDP_GRO,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    };
    (gso, gro)
}

/// The MTU of this machine's route to `to` (its interface's, or what path
/// MTU discovery learned), as the kernel reports it for a socket connected
/// there (connecting a UDP socket sends nothing); `None` if unknown.
pub fn route_mtu(to: SocketAddr) -> Option<usize> {
    let any: SocketAddr = if to.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    };
    let socket = UdpSocket::bind(any).ok()?;
    socket.connect(to).ok()?;
    let (level, option) = if to.is_ipv4() {
        (libc::IPPROTO_IP, libc::IP_MTU)
    } else {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU)
    };
    let mut value: libc::c_int = 0;
    let mut length = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: an int-sized option read into an int.
    let read = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            level,
            option,
            (&raw mut value).cast(),
            &mut length,
        )
    };
    (read == 0).then(|| usize::try_from(value).ok()).flatten()
}

/// The bytes an IP and a UDP header add to a datagram sent to `to`.
pub fn udp_overhead(to: SocketAddr) -> usize {
    if to.is_ipv4() { 20 + 8 } else { 40 + 8 }
}

/// The address to give a socket for `to`: on a dual-stack IPv6 socket an
/// IPv4 peer is addressed as IPv4-mapped IPv6.
pub fn socket_address_for(to: SocketAddr, dual_stack: bool) -> SocketAddr {
    match to {
        SocketAddr::V4(v4) if dual_stack => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        to => to,
    }
}

/// Control-message room for one u16 or int option, aligned as a
/// `cmsghdr` must be.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Control([u8; 32]);

const CONTROL_ZERO: Control = Control([0; 32]);

/// One datagram (or GSO run of equal datagrams) waiting to be sent.
#[derive(Clone, Copy)]
struct Pending {
    start: usize,
    end: usize,
    /// Bytes per datagram (every one but the last of a run; a single
    /// datagram's own length).
    segment: usize,
    to: SocketAddr,
}

impl Pending {
    /// Whether this is a run of several datagrams (a GSO send).
    fn is_run(&self) -> bool {
        self.end - self.start > self.segment
    }
}

/// Datagrams gathered into one buffer and sent with one `sendmmsg`,
/// equal-sized runs to the same address as one UDP GSO send each.
pub struct SendBatch {
    arena: Vec<u8>,
    used: usize,
    pending: Vec<Pending>,
    /// Datagrams in `pending` (a GSO run counts each of its segments).
    held: usize,
    gso: bool,
    names: Vec<SockAddr>,
    iovecs: Vec<libc::iovec>,
    controls: Vec<Control>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` are rebuilt before
// each use and point only into this struct's own buffers.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// A batch with `capacity` bytes of room; `gso` if the socket takes
    /// UDP segmentation.
    pub fn new(capacity: usize, gso: bool) -> SendBatch {
        SendBatch {
            arena: vec![0u8; capacity],
            used: 0,
            pending: Vec::with_capacity(BATCH),
            held: 0,
            gso,
            names: Vec::with_capacity(BATCH),
            iovecs: Vec::with_capacity(BATCH),
            controls: vec![CONTROL_ZERO; BATCH],
            headers: Vec::with_capacity(BATCH),
        }
    }

    /// Room for the next datagram, to be written and then [`commit`]ted.
    ///
    /// [`commit`]: SendBatch::commit
    pub fn room(&mut self) -> &mut [u8] {
        &mut self.arena[self.used..]
    }

    /// Whether fewer than `bytes` are free, or the batch is full.
    pub fn needs_flush(&self, bytes: usize) -> bool {
        self.arena.len() - self.used < bytes || self.pending.len() >= BATCH || self.held >= MAX_HELD
    }

    /// Takes the `length` bytes written at the start of [`room`] as a
    /// datagram to `to`.
    ///
    /// [`room`]: SendBatch::room
    pub fn commit(&mut self, length: usize, to: SocketAddr) {
        let start = self.used;
        self.used += length;
        self.held += 1;
        if self.gso
            && let Some(last) = self.pending.last_mut()
            && last.to == to
            && last.end == start
        {
            let (size, run) = (last.segment, last.end - last.start);
            // A run continues while every segment but the last is `size`
            // long: a shorter one ends it.
            if run % size == 0
                && length <= size
                && run + length <= MAX_GSO_BYTES
                && run / size < MAX_GSO_SEGMENTS
            {
                last.end += length;
                return;
            }
        }
        self.pending.push(Pending {
            start,
            end: start + length,
            segment: length,
            to,
        });
    }

    /// Sends everything gathered. Send errors are dropped packets (as a
    /// NIC would drop them); if the kernel refuses segmentation at send
    /// time, GSO is turned off for good and the batch sent again without.
    pub fn flush(&mut self, socket: &UdpSocket, dual_stack: bool) {
        if self.pending.is_empty() {
            return;
        }
        if let Err((failed, error)) = self.send(socket, dual_stack) {
            tracing::warn!(%error, "UDP segmentation refused at send time; continuing without it");
            self.gso = false;
            // Unroll what was not sent into single datagrams and send again.
            let runs: Vec<Pending> = self.pending.drain(failed..).collect();
            self.pending.clear();
            for run in runs {
                let mut at = run.start;
                while at < run.end {
                    let end = (at + run.segment).min(run.end);
                    self.pending.push(Pending {
                        start: at,
                        end,
                        segment: end - at,
                        to: run.to,
                    });
                    at = end;
                    if self.pending.len() == BATCH {
                        let _ = self.send(socket, dual_stack);
                        self.pending.clear();
                    }
                }
            }
            let _ = self.send(socket, dual_stack);
        }
        self.pending.clear();
        self.used = 0;
        self.held = 0;
    }

    /// Sends the pending datagrams; a GSO run the kernel refused ends the
    /// call with its index.
    fn send(&mut self, socket: &UdpSocket, dual_stack: bool) -> Result<(), (usize, io::Error)> {
        self.names.clear();
        self.iovecs.clear();
        self.headers.clear();
        for pending in &self.pending {
            self.names
                .push(SockAddr::from(socket_address_for(pending.to, dual_stack)));
            self.iovecs.push(libc::iovec {
                iov_base: self.arena[pending.start..].as_mut_ptr().cast(),
                iov_len: pending.end - pending.start,
            });
        }
        for (index, pending) in self.pending.iter().enumerate() {
            // SAFETY: an all-zero msghdr is a valid empty one.
            let mut header: libc::msghdr = unsafe { zeroed() };
            header.msg_name = self.names[index].as_ptr() as *mut libc::c_void;
            header.msg_namelen = self.names[index].len();
            header.msg_iov = &mut self.iovecs[index];
            header.msg_iovlen = 1;
            if pending.is_run() {
                header.msg_control = (&raw mut self.controls[index]).cast();
                // SAFETY: CMSG_SPACE is a pure size computation.
                header.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
                // SAFETY: the control buffer is aligned for a cmsghdr and has
                // room for one cmsg of a u16 (32 >= CMSG_SPACE(2)), and
                // `header` points to it.
                unsafe {
                    let message = libc::CMSG_FIRSTHDR(&header);
                    (*message).cmsg_level = SOL_UDP;
                    (*message).cmsg_type = UDP_SEGMENT;
                    (*message).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(
                        libc::CMSG_DATA(message).cast::<u16>(),
                        pending.segment as u16,
                    );
                }
            }
            self.headers.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
        }
        let fd = socket.as_raw_fd();
        let mut sent = 0;
        while sent < self.headers.len() {
            let remaining = &mut self.headers[sent..];
            // SAFETY: every header points into buffers owned by `self`,
            // alive for this call.
            let result = unsafe {
                libc::sendmmsg(
                    fd,
                    remaining.as_mut_ptr(),
                    remaining.len() as libc::c_uint,
                    0,
                )
            };
            if result < 0 {
                let error = io::Error::last_os_error();
                match error.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return Ok(()),
                    _ => {
                        if self.pending[sent].is_run()
                            && matches!(error.raw_os_error(), Some(libc::EIO | libc::EINVAL))
                        {
                            return Err((sent, error));
                        }
                        // Skip the datagram the kernel refused (an
                        // unreachable address, say) and send the rest.
                        tracing::trace!(%error, "UDP send failed");
                        sent += 1;
                    }
                }
            } else {
                sent += result as usize;
            }
        }
        Ok(())
    }
}

/// Buffers for `recvmmsg`: each message may hold a GRO run of datagrams.
pub struct ReceiveBatch {
    buffers: Vec<u8>,
    size: usize,
    names: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    controls: Vec<Control>,
    headers: Vec<libc::mmsghdr>,
    received: usize,
}

// SAFETY: as for `SendBatch`: pointers into its own buffers, rebuilt per call.
unsafe impl Send for ReceiveBatch {}

impl ReceiveBatch {
    /// `count` messages of `size` bytes each.
    pub fn new(count: usize, size: usize) -> ReceiveBatch {
        ReceiveBatch {
            buffers: vec![0u8; count * size],
            size,
            // SAFETY: all-zero sockaddr_storage is valid.
            names: vec![unsafe { zeroed() }; count],
            iovecs: Vec::with_capacity(count),
            controls: vec![CONTROL_ZERO; count],
            headers: Vec::with_capacity(count),
            received: 0,
        }
    }

    /// Waits for datagrams (up to the socket's read timeout) and takes as
    /// many as are there; returns how many messages arrived.
    pub fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let count = self.names.len();
        self.iovecs.clear();
        self.headers.clear();
        for index in 0..count {
            self.iovecs.push(libc::iovec {
                iov_base: self.buffers[index * self.size..].as_mut_ptr().cast(),
                iov_len: self.size,
            });
        }
        for index in 0..count {
            // SAFETY: an all-zero msghdr is a valid empty one.
            let mut header: libc::msghdr = unsafe { zeroed() };
            header.msg_name = (&raw mut self.names[index]).cast();
            header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_iov = &mut self.iovecs[index];
            header.msg_iovlen = 1;
            header.msg_control = (&raw mut self.controls[index]).cast();
            header.msg_controllen = size_of::<Control>() as _;
            self.headers.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
        }
        // SAFETY: every header points into buffers owned by `self`.
        let result = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_WAITFORONE as _,
                std::ptr::null_mut(),
            )
        };
        if result < 0 {
            self.received = 0;
            return Err(io::Error::last_os_error());
        }
        self.received = result as usize;
        Ok(self.received)
    }

    /// Message `index` of the last receive: its bytes, where it came from,
    /// and the size of the datagrams coalesced into it (0: one datagram).
    fn message(&self, index: usize) -> Option<(&[u8], SocketAddr, usize)> {
        if index >= self.received {
            return None;
        }
        let header = &self.headers[index];
        let length = (header.msg_len as usize).min(self.size);
        let bytes = &self.buffers[index * self.size..index * self.size + length];
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: `sockaddr_storage` is this platform's type for the view,
        // and the kernel wrote a socket address of `msg_namelen` bytes.
        let from = unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = self.names[index];
            SockAddr::new(storage, header.msg_hdr.msg_namelen)
        }
        .as_socket()?;
        let mut segment = 0;
        // SAFETY: the kernel filled the control buffer and set its length;
        // the CMSG macros walk only within it.
        unsafe {
            let mut message = libc::CMSG_FIRSTHDR(&header.msg_hdr);
            while !message.is_null() {
                if (*message).cmsg_level == SOL_UDP && (*message).cmsg_type == UDP_GRO {
                    segment =
                        std::ptr::read_unaligned(libc::CMSG_DATA(message).cast::<libc::c_int>())
                            as usize;
                }
                message = libc::CMSG_NXTHDR(&header.msg_hdr, message);
            }
        }
        Some((bytes, from, segment))
    }

    /// The datagrams of message `index` (a run coalesced by GRO cut back
    /// into its datagrams) and where they came from (an IPv4-mapped
    /// address given as IPv4).
    pub fn datagrams(&self, index: usize) -> Option<(std::slice::Chunks<'_, u8>, SocketAddr)> {
        let (bytes, from, segment) = self.message(index)?;
        let size = if segment == 0 {
            bytes.len().max(1)
        } else {
            segment
        };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        Some((bytes.chunks(size), from))
    }
}

/// Waits up to `timeout` for either of `fds` to be readable (a negative
/// one is left out); which are.
pub fn wait_either(fds: [std::os::fd::RawFd; 2], timeout: std::time::Duration) -> [bool; 2] {
    let mut polled = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    let millis = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: `polled` is an array of two pollfd, the length given; poll(2)
    // ignores a negative fd.
    let ready = unsafe { libc::poll(polled.as_mut_ptr(), 2, millis) };
    if ready <= 0 {
        return [false; 2];
    }
    polled.map(|fd| fd.revents != 0)
}
