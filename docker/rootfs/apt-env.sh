# Sourced by build-rootfs.sh and refresh-lock.sh: a private apt configuration under $GATE_ROOTFS_APT (lists, cache,
# sources) with a trixie source for downloading only. The host's /etc/apt is never read for sources nor changed, and
# nothing is installed: apt-get download fetches .deb files into the current folder.
GATE_ROOTFS_SUITE="${GATE_ROOTFS_SUITE:-trixie}"
GATE_ROOTFS_MIRROR="${GATE_ROOTFS_MIRROR:-http://deb.debian.org/debian}"
apt_env() {
  local root="$1"
  mkdir -p "$root/etc/apt.conf.d" "$root/etc/preferences.d" "$root/etc/sources.list.d" "$root/lists/partial" "$root/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $GATE_ROOTFS_MIRROR $GATE_ROOTFS_SUITE main" >"$root/etc/sources.list"
  cat >"$root/apt.conf" <<CONF
Dir::Etc "$root/etc";
Dir::Etc::sourcelist "$root/etc/sources.list";
Dir::Etc::sourceparts "$root/etc/sources.list.d";
Dir::Etc::parts "$root/etc/apt.conf.d";
Dir::Etc::preferencesparts "$root/etc/preferences.d";
Dir::State "$root";
Dir::State::lists "$root/lists";
Dir::State::status "/dev/null";
Dir::Cache "$root/cache";
APT::Architecture "amd64";
APT::Architectures "amd64";
Acquire::Languages "none";
APT::Sandbox::User "root";
CONF
  export APT_CONFIG="$root/apt.conf"
}
