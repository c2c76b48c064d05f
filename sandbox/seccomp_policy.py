"""The seccomp filter every untrusted process runs under, compiled once to classic BPF.

Default allow, with a deny list: a deny list keeps any ordinary program (compilers, interpreters,
threads, multiprocessing over AF_UNIX) working, while the calls below are the ones a contained
program needs only to attack the kernel or escape its namespaces. Denied calls fail with EPERM
rather than killing the process, so programs see an ordinary error and the verdict stays a
verdict. Foreign-architecture calls (int 0x80, x32) kill: libseccomp's default for the native arch.

The BPF is loaded inside the jail by the trusted launcher just before it hands over to the
program (prctl(PR_SET_SECCOMP)); the launcher itself needs mount/unshare to build each run's
namespaces, which is why the filter is not given to bwrap for the whole jail.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os

import pyseccomp as seccomp

# Namespaces, mounts, kernel modules, tracing, keys, eBPF, hardware and clock: none of these are
# needed to compute an answer.
DENIED_SYSCALLS: tuple[str, ...] = (
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "process_madvise", "kcmp",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "swapon", "swapoff", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "acct", "quotactl", "syslog", "iopl", "ioperm", "uselib", "vhangup", "personality",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init", "memfd_secret",
    # SysV and POSIX message-queue IPC outlive the processes that made them; runs share a jail's
    # IPC namespace, so deny them rather than pay for a namespace per run.
    "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop",
    "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedreceive", "mq_notify", "mq_getsetattr",
)

AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
NETLINK_ROUTE = 0
# Above every address family Linux has (AF_MAX is 46 in 6.x): all of these are denied as well.
FAMILY_CEILING = 64
# socket(2)'s type carries SOCK_NONBLOCK/SOCK_CLOEXEC in its high bits; the kind is the low nibble.
SOCK_TYPE_MASK = 0xF
SOCK_STREAM, SOCK_DGRAM = 1, 2
# What `Limits.network` names: which socket families a program may create.
NETWORK_FAMILIES: dict[str, tuple[int, ...]] = {
    "none": (AF_UNIX,),
    # The jail's own network namespace holds only its lo: TCP/UDP there, and route netlink to
    # query it (socket.if_nameindex, getifaddrs), reach nothing outside the jail.
    "private_loopback": (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK),
}
# clone() flags that create namespaces; clone3 passes its flags in memory the filter cannot read,
# so clone3 reports ENOSYS and glibc falls back to clone().
CLONE_NAMESPACE_FLAGS: tuple[int, ...] = (
    0x00000080,  # CLONE_NEWTIME
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


def _deny_sockets(f: seccomp.SyscallFilter, families: tuple[int, ...]) -> None:
    """Deny every socket(2) but `families`; inet only as stream or datagram (never raw, never
    packet), netlink only for its route protocol. A deny list rules by OR, hence one rule per
    family left out."""
    eperm = seccomp.ERRNO(errno.EPERM)
    for family in range(FAMILY_CEILING):
        if family not in families:
            f.add_rule(eperm, "socket", seccomp.Arg(0, seccomp.EQ, family))
    f.add_rule(eperm, "socket", seccomp.Arg(0, seccomp.GE, FAMILY_CEILING))
    for family in (AF_INET, AF_INET6):
        if family in families:
            for kind in range(SOCK_TYPE_MASK + 1):
                if kind not in (SOCK_STREAM, SOCK_DGRAM):
                    f.add_rule(eperm, "socket", seccomp.Arg(0, seccomp.EQ, family),
                               seccomp.Arg(1, seccomp.MASKED_EQ, SOCK_TYPE_MASK, kind))
    if AF_NETLINK in families:
        f.add_rule(eperm, "socket", seccomp.Arg(0, seccomp.EQ, AF_NETLINK),
                   seccomp.Arg(2, seccomp.NE, NETLINK_ROUTE))
    # A socket pair is only ever local: unix, whatever the network setting.
    f.add_rule(eperm, "socketpair", seccomp.Arg(0, seccomp.NE, AF_UNIX))


def _build(network: str) -> seccomp.SyscallFilter:
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    with contextlib.suppress(OSError, RuntimeError):
        # A binary search over syscall numbers instead of a linear scan on every call the program
        # makes (libseccomp >= 2.5); older versions keep the linear filter, equally correct.
        f.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    eperm = seccomp.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(eperm, name)
        except (OSError, RuntimeError, ValueError):
            continue  # a call this kernel/libseccomp does not know cannot be made either
    _deny_sockets(f, NETWORK_FAMILIES[network])
    for flag in CLONE_NAMESPACE_FLAGS:  # rules for one call are OR'ed: any namespace flag denies
        f.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return f


@functools.cache
def compiled_bpf(network: str = "private_loopback") -> bytes:
    """The filter for a `Limits.network` setting as raw `struct sock_filter` instructions, ready
    for PR_SET_SECCOMP."""
    fd = os.memfd_create("arbiter-seccomp")
    with os.fdopen(fd, "w+b") as file:
        _build(network).export_bpf(file)
        file.seek(0)
        return file.read()
