#!/bin/busybox sh
# /init of the test initramfs (busybox): loads the few modules needed to reach the host's file system
# over 9p, mounts it read-only with a RAM overlay on top (so the guest can write anywhere without touching
# the host), mounts the results share, runs test/kernels/guest.sh from the repository in that root, powers off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
param() { sed -n "s/.*netbpf\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
for m in $(cat /modules.list); do insmod "/modules/$m" 2>/dev/null || echo "init: insmod $m failed"; done
mkdir -p /mnt/host /mnt/rw /newroot
opts=trans=virtio,version=9p2000.L,msize=524288
if mount -t 9p -o "$opts,ro,cache=loose" hostroot /mnt/host &&
   mount -t tmpfs -o size=1536m tmpfs /mnt/rw && mkdir -p /mnt/rw/upper /mnt/rw/work &&
   mount -t overlay overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot &&
   mkdir -p /newroot/netbpf-out && mount -t 9p -o "$opts" out /newroot/netbpf-out; then
  # The kernel runs its module loader (request_module: nft expressions, protocol families) in the root of
  # pid 1, which stays here: hand the request to modprobe in the host's root, where the modules are.
  mkdir -p /sbin && printf '#!/bin/busybox sh\nexec /bin/busybox chroot /newroot /sbin/modprobe "$@"\n' > /sbin/modprobe
  chmod +x /sbin/modprobe
  chroot /newroot /bin/bash "$(param repo)/test/kernels/guest.sh" vm
  echo "init: guest.sh exited with $?"
else
  echo "init: could not mount the host root over 9p"
fi
sync
poweroff -f
