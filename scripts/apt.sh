# Installing Debian packages for the setup-*.sh scripts, which source this file (bash):
#
#   apt_root "setup-x: installing x" "until then the x tests skip." pkg1 pkg2
#   ...                           # anything that needs $SUDO before the install
#   apt_install pkg1 pkg2
#
# (Not setup-vulkan.sh: the npm package ships it alone, and it installs through sudo even
# where that asks for a password, on Debian 12 from bookworm-backports.)

# apt_root WHAT AFTER PKG...: sets SUDO, the prefix that runs a command as root: empty as root,
# sudo where it works without a password (`sudo -n` never prompts: there may be no terminal;
# `env` carries DEBIAN_FRONTEND through sudo, which would otherwise reset the environment).
# Otherwise prints "WHAT needs root. Run:", the commands that install PKG..., and AFTER, and
# exits 0: the tests that need the packages skip with that reason (but fail under CI=true).
apt_root() {
  local what=$1 after=$2
  shift 2
  if [ "$(id -u)" = 0 ]; then
    SUDO=
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO='sudo env DEBIAN_FRONTEND=noninteractive'
  else
    echo "$what needs root. Run:"
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends $*"
    echo "$after"
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
}

# apt_install PKG...: apt-get update, then installs PKG... without their recommends, quietly,
# through $SUDO (call apt_root first).
apt_install() {
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
