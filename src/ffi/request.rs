//! Safe views of a REQUEST and its attribute lists.
//!
//! Everything here borrows server-owned (talloc) memory for the duration of one module
//! callback; nothing is ever freed from Rust. New pairs are allocated by the server's
//! own `fr_pair_make`, parented to the packet they belong to.
use super::net::{AF_INET, AF_INET6};
use super::sys;
use crate::attrs::Attrs;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The request a callback was given. Valid only during that callback.
pub struct Request<'a> {
    raw: *mut sys::REQUEST,
    _life: PhantomData<&'a mut sys::REQUEST>,
}

/// The lists of a request we read or add to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum List {
    Request,
    Reply,
    Control,
}

impl<'a> Request<'a> {
    /// # Safety
    /// `raw` must be the REQUEST passed to the running callback (or null).
    pub unsafe fn from_raw(raw: *mut sys::REQUEST) -> Option<Self> {
        if raw.is_null() || (*raw).packet.is_null() {
            return None;
        }
        Some(Request {
            raw,
            _life: PhantomData,
        })
    }

    pub fn raw(&self) -> *mut sys::REQUEST {
        self.raw
    }

    fn packet(&self) -> &sys::RADIUS_PACKET {
        // SAFETY: checked non-null in from_raw; the server keeps it alive for the callback.
        unsafe { &*(*self.raw).packet }
    }

    /// The server's number for this request, unique among requests in flight.
    pub fn number(&self) -> u32 {
        // SAFETY: the request is live for the callback.
        unsafe { (*self.raw).number }
    }

    /// The user's current sessions, for the server's Simultaneous-Use check (what a
    /// `session` section module reports).
    pub fn set_simul_count(&mut self, sessions: u64) {
        // SAFETY: the request is live for the callback; a plain int field.
        unsafe { (*self.raw).simul_count = i32::try_from(sessions).unwrap_or(i32::MAX) }
    }

    /// RADIUS code of the received packet (1 Access-Request, 4 Accounting-Request, ...).
    pub fn code(&self) -> u32 {
        self.packet().code
    }

    /// When the server received the packet (unix seconds).
    pub fn received_at(&self) -> i64 {
        self.packet().timestamp.tv_sec
    }

    /// Source address of the packet (the NAS, or a proxy in front of it).
    pub fn src_ip(&self) -> Option<IpAddr> {
        ipaddr(&self.packet().src_ipaddr)
    }

    /// The shared secret of the RADIUS client (clients.conf) the packet came from.
    /// A secret: never log it.
    pub fn client_secret(&self) -> Option<&str> {
        // SAFETY: the request is live for the callback; `client` and its `secret` are
        // null or server-owned, NUL-terminated, and outlive the request.
        unsafe {
            let client = (*self.raw).client;
            if client.is_null() || (*client).secret.is_null() {
                return None;
            }
            CStr::from_ptr((*client).secret).to_str().ok()
        }
    }

    fn head(&self, list: List) -> *mut sys::VALUE_PAIR {
        // SAFETY: the request and its packets are live for the callback.
        unsafe {
            match list {
                List::Request => (*(*self.raw).packet).vps,
                List::Reply if !(*self.raw).reply.is_null() => (*(*self.raw).reply).vps,
                List::Control => (*self.raw).config,
                List::Reply => std::ptr::null_mut(),
            }
        }
    }

    /// Iterates the pairs of a list.
    pub fn pairs(&self, list: List) -> Pairs<'_> {
        Pairs {
            next: self.head(list),
            _life: PhantomData,
        }
    }

    /// Read access to one list through the plain-Rust [`Attrs`] trait.
    pub fn list(&self, list: List) -> ListView<'_> {
        ListView {
            request: self,
            list,
        }
    }

    /// Adds `name op value` to a list; the server parses `value` as the attribute's type.
    pub fn add(&mut self, list: List, name: &str, value: &str, op: Op) -> Result<(), String> {
        let (cname, cvalue) = match (CString::new(name), CString::new(value)) {
            (Ok(n), Ok(v)) => (n, v),
            _ => {
                return Err(format!(
                    "attribute {name:?} or its value contains a NUL byte"
                ))
            }
        };
        // SAFETY: ctx and list head belong to this live request; strings are NUL-terminated
        // and copied by the server.
        let vp = unsafe {
            let (ctx, head): (*mut std::ffi::c_void, *mut *mut sys::VALUE_PAIR) = match list {
                List::Request => ((*self.raw).packet.cast(), &mut (*(*self.raw).packet).vps),
                List::Reply => {
                    if (*self.raw).reply.is_null() {
                        return Err("request has no reply packet".into());
                    }
                    ((*self.raw).reply.cast(), &mut (*(*self.raw).reply).vps)
                }
                List::Control => (self.raw.cast(), &mut (*self.raw).config),
            };
            // fr_pair_make appends whatever the operator: `:=` and `=` are applied
            // here, or a reply from `users` ends up with two Session-Timeouts.
            let vp = sys::fr_pair_make(
                ctx.cast(),
                std::ptr::null_mut(),
                cname.as_ptr(),
                cvalue.as_ptr(),
                op.token(),
            );
            if !vp.is_null() {
                let (attr, vendor) = ((*(*vp).da).attr, (*(*vp).da).vendor);
                match op {
                    Op::Set => sys::fr_pair_delete_by_num(head, attr, vendor, sys::TAG_ANY as i8),
                    Op::Eq
                        if !sys::fr_pair_find_by_num(*head, attr, vendor, sys::TAG_ANY as i8)
                            .is_null() =>
                    {
                        // Already there: `=` keeps it; the new pair stays in ctx until
                        // the request is freed (never freed from Rust).
                        return Ok(());
                    }
                    _ => {}
                }
                sys::fr_pair_add(head, vp);
            }
            vp
        };
        if vp.is_null() {
            Err(format!(
                "could not add {name} = {value:?} (unknown attribute or bad value)"
            ))
        } else {
            Ok(())
        }
    }
}

/// Assignment operators we use when adding pairs.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// `=`: add if not already present.
    Eq,
    /// `:=`: replace.
    Set,
    /// `+=`: append.
    Add,
}

impl Op {
    fn token(self) -> sys::FR_TOKEN {
        match self {
            Op::Eq => sys::fr_token_t::T_OP_EQ,
            Op::Set => sys::fr_token_t::T_OP_SET,
            Op::Add => sys::fr_token_t::T_OP_ADD,
        }
    }
}

fn ipaddr(a: &sys::fr_ipaddr_t) -> Option<IpAddr> {
    // SAFETY: the union member read matches the address family tag.
    unsafe {
        match a.af {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                a.ipaddr.ip4addr.s_addr,
            )))),
            AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(
                a.ipaddr.ip6addr.__in6_u.__u6_addr8,
            ))),
            _ => None,
        }
    }
}

/// Iterator over a VALUE_PAIR list.
pub struct Pairs<'a> {
    next: *mut sys::VALUE_PAIR,
    _life: PhantomData<&'a sys::VALUE_PAIR>,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = Pair<'a>;
    fn next(&mut self) -> Option<Pair<'a>> {
        while !self.next.is_null() {
            // SAFETY: list nodes are live for the callback; `next` links are server-maintained.
            let vp = unsafe { &*self.next };
            self.next = vp.next;
            if !vp.da.is_null() {
                return Some(Pair { vp });
            }
        }
        None
    }
}

/// One attribute of a list.
pub struct Pair<'a> {
    vp: &'a sys::VALUE_PAIR,
}

impl<'a> Pair<'a> {
    fn da(&self) -> &'a sys::DICT_ATTR {
        // SAFETY: non-null checked by the iterator; dictionary entries outlive requests.
        unsafe { &*self.vp.da }
    }
    pub fn attr(&self) -> u32 {
        self.da().attr
    }
    pub fn vendor(&self) -> u32 {
        self.da().vendor
    }
    pub fn name(&self) -> &'a str {
        // SAFETY: `name` is a NUL-terminated flexible array member of the DICT_ATTR.
        unsafe { CStr::from_ptr(self.da().name.as_ptr()) }
            .to_str()
            .unwrap_or("")
    }
    fn ty(&self) -> u32 {
        self.da().type_
    }

    /// Integer-like values (integer, date, byte, short, signed).
    pub fn as_u32(&self) -> Option<u32> {
        use sys::PW_TYPE::*;
        // SAFETY: the union member read matches the attribute's dictionary type.
        unsafe {
            match self.ty() {
                PW_TYPE_INTEGER | PW_TYPE_DATE => Some(self.vp.data.integer),
                PW_TYPE_BYTE => Some(u32::from(self.vp.data.byte)),
                PW_TYPE_SHORT => Some(u32::from(self.vp.data.ushort)),
                PW_TYPE_SIGNED => u32::try_from(self.vp.data.sinteger).ok(),
                _ => None,
            }
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        if self.ty() == sys::PW_TYPE::PW_TYPE_INTEGER64 {
            // SAFETY: type checked.
            return Some(unsafe { self.vp.data.integer64 });
        }
        self.as_u32().map(u64::from)
    }

    pub fn as_ipv4(&self) -> Option<Ipv4Addr> {
        if self.ty() == sys::PW_TYPE::PW_TYPE_IPV4_ADDR {
            // SAFETY: type checked; s_addr is in network byte order.
            return Some(Ipv4Addr::from(u32::from_be(unsafe {
                self.vp.data.ipaddr.s_addr
            })));
        }
        None
    }

    pub fn as_ipv6(&self) -> Option<std::net::Ipv6Addr> {
        if self.ty() == sys::PW_TYPE::PW_TYPE_IPV6_ADDR {
            // SAFETY: type checked; 16 bytes in network order.
            return Some(std::net::Ipv6Addr::from(unsafe {
                self.vp.data.ipv6addr.__in6_u.__u6_addr8
            }));
        }
        None
    }

    /// String and octets values as bytes.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        use sys::PW_TYPE::*;
        match self.ty() {
            PW_TYPE_STRING | PW_TYPE_OCTETS => {
                // SAFETY: type checked; `length` bytes are valid at the pointer.
                unsafe {
                    let p = self.vp.data.octets;
                    if p.is_null() {
                        Some(&[])
                    } else {
                        Some(std::slice::from_raw_parts(p, self.vp.length))
                    }
                }
            }
            _ => None,
        }
    }

    /// The value as text, whatever its type (what an operator wrote in `users` or SQL).
    pub fn as_text(&self) -> Option<String> {
        if let Some(b) = self.as_bytes() {
            // Exact and injective: never two users for one (see crate::names).
            return Some(crate::names::decode(b));
        }
        if let Some(v) = self.as_u64() {
            return Some(v.to_string());
        }
        self.as_ipv4().map(|ip| ip.to_string())
    }
}

/// One list of a request seen through the plain-Rust [`Attrs`] trait.
pub struct ListView<'r> {
    request: &'r Request<'r>,
    list: List,
}

impl ListView<'_> {
    fn find(&self, attr: u32, vendor: u32) -> Option<Pair<'_>> {
        self.request
            .pairs(self.list)
            .find(|p| p.attr() == attr && p.vendor() == vendor)
    }

    /// The smallest value of every instance of an integer attribute (a list from
    /// `users` plus unlang may hold more than one).
    pub fn min_integer(&self, attr: u32, vendor: u32) -> Option<u64> {
        self.request
            .pairs(self.list)
            .filter(|p| p.attr() == attr && p.vendor() == vendor)
            .filter_map(|p| p.as_u64())
            .min()
    }
}

impl Attrs for ListView<'_> {
    fn integer(&self, attr: u32, vendor: u32) -> Option<u64> {
        self.find(attr, vendor)?.as_u64()
    }
    fn text(&self, attr: u32, vendor: u32) -> Option<String> {
        self.find(attr, vendor)?.as_text()
    }
    fn ipv4(&self, attr: u32, vendor: u32) -> Option<Ipv4Addr> {
        self.find(attr, vendor)?.as_ipv4()
    }
    fn text_by_name(&self, name: &str) -> Option<String> {
        self.request
            .pairs(self.list)
            .find(|p| p.name().eq_ignore_ascii_case(name))?
            .as_text()
    }
}
