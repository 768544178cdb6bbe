/// The center link of SPEC.md's push protocol: the alert model, the durable outbox and the
/// HTTPS client. This file only names the module; the pieces live beside it.
enum Uplink {}
