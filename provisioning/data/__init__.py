"""Data files of loa-provision: hardware presets, default policy, first-boot script, systemd unit, firewall."""
