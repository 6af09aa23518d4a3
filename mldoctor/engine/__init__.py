"""The docker SDK boundary (as httpx's transports are): where the daemon is, a client for it, and what a failure
to reach it means. Everything above works on plain values and the facts built from them; only this package, the
probe launcher and the image builder talk to docker-py, and always through `open_client`."""
