/** Container ids from cgroup paths as each runtime names them, and finding the cgroup v2 mount. */
import { describe, expect, it } from 'vitest';
import { cgroup2Mount, containerFromPath } from '../../src/core/containers.js';

const hex = 'ab'.repeat(32);

describe('container attribution', () => {
  it('reads container ids from the cgroup paths of docker, containerd, cri-o, podman and kubepods', () => {
    expect(containerFromPath(`/system.slice/docker-${hex}.scope`)).toEqual({ runtime: 'docker', id: hex });
    expect(containerFromPath(`/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234abcd_5678_90ab_cdef_1234567890ab.slice/cri-containerd-${hex}.scope`)).toEqual({ runtime: 'containerd', id: hex });
    expect(containerFromPath(`/kubepods.slice/kubepods-pod1234abcd_5678_90ab_cdef_1234567890ab.slice/crio-${hex}.scope`)).toEqual({ runtime: 'crio', id: hex });
    expect(containerFromPath(`/machine.slice/libpod-${hex}.scope/container`)).toEqual({ runtime: 'libpod', id: hex });
    expect(containerFromPath(`/docker/${hex}`)).toEqual({ runtime: 'docker', id: hex });
    expect(containerFromPath('/kubepods/besteffort/pod1234abcd-5678-90ab-cdef-1234567890ab')).toEqual({ runtime: 'kubepods', id: 'pod-1234abcd-5678-90ab-cdef-1234567890ab' });
    expect(containerFromPath('/user.slice/user-0.slice/session-1.scope')).toBeNull();
    expect(containerFromPath('/')).toBeNull();
  });
  it('finds the cgroup v2 mount in a mount table, or none on cgroup v1 only hosts', () => {
    expect(cgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n')).toBe('/sys/fs/cgroup/unified');
    expect(cgroup2Mount('cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n')).toBeNull();
  });
});
