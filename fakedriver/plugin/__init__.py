"""The managed (v2) plugin bundle: ``config.json`` and a rootfs with a copy of the
running interpreter and fakedriver. Imports no CLI: ``plugin build`` hands it the check of
serve's flags."""
