//! The framework's protocols beside MQTT: TCP request/response, serial, and the registry that
//! opens any protocol (built in or from a plugin) by name behind one interface.

pub mod framing;
pub mod registry;
pub mod serial;
pub mod tcp;
