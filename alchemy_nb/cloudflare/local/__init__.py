"""The local target: Cloudflare-style apps served for real on this machine."""
