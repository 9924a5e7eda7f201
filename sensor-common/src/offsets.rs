//! Kernel struct offsets, resolved by userspace from the running kernel's BTF and from
//! tracefs format files, then written into the eBPF object as the global `OFFSETS`.
//!
//! rustc emits no CO-RE relocations, and struct layouts differ between kernels (on 6.18
//! `file.f_path` sits in an anonymous union at byte 64; older kernels place it elsewhere),
//! so nothing here may be a compile-time constant. A field the kernel lacks clears the
//! matching [`feature`] bit and the programs skip the work that needs it.
//!
//! The global lives in `.rodata`, which the loader freezes (`BPF_F_RDONLY_PROG`): the
//! verifier then knows every value read from it as a constant. That is what lets the
//! typed programs load a field at `pointer + offset` directly: the verifier checks the
//! constant offset against the pointer's BTF type.

/// All offsets are in bytes from the start of their struct or tracepoint record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// [`feature`] bits: which groups below are valid.
    pub features: u32,

    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_mm: u32,
    pub task_files: u32,
    pub task_exit_code: u32,

    pub mm_exe_file: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,

    pub files_fdt: u32,
    pub fdtable_fd: u32,

    pub file_f_path: u32,
    pub file_f_inode: u32,
    pub file_f_flags: u32,
    pub path_mnt: u32,
    pub path_dentry: u32,

    pub inode_i_mode: u32,
    pub inode_i_ino: u32,
    pub inode_i_size: u32,
    pub inode_i_sb: u32,
    pub inode_i_rdev: u32,
    pub inode_mtime_sec: u32,
    pub inode_mtime_nsec: u32,
    pub inode_ctime_sec: u32,
    pub inode_ctime_nsec: u32,
    pub super_block_s_dev: u32,

    pub dentry_d_parent: u32,
    pub dentry_d_name_len: u32,
    pub dentry_d_name_name: u32,

    pub vfsmount_mnt_root: u32,
    /// Offset of the embedded `struct vfsmount mnt` in `struct mount`.
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,

    /// `syscalls:sys_exit_*`: the `ret` field.
    pub tp_sys_exit_ret: u32,
    /// `syscalls:sys_enter_mmap` fields.
    pub tp_mmap_len: u32,
    pub tp_mmap_prot: u32,
    pub tp_mmap_flags: u32,
    pub tp_mmap_fd: u32,
    pub tp_mmap_off: u32,
    /// `sock:inet_sock_set_state` fields.
    pub tp_sock_newstate: u32,
    pub tp_sock_sport: u32,
    pub tp_sock_family: u32,
    pub tp_sock_protocol: u32,
    pub tp_sock_saddr: u32,
    pub tp_sock_saddr_v6: u32,
    /// `dentry->d_hash.pprev`: NULL once the dentry is unlinked (`d_unhashed`).
    pub dentry_d_hash_pprev: u32,
    /// `syscalls:sys_enter_ioctl`: the descriptor.
    pub tp_ioctl_fd: u32,
    /// `task->nsproxy->mnt_ns->ns.inum`: the process's mount namespace.
    pub task_nsproxy: u32,
    pub nsproxy_mnt_ns: u32,
    pub mnt_namespace_inum: u32,
    /// `dentry->d_iname` (6.14+: `d_shortname.string`): short names live inline there.
    pub dentry_d_iname: u32,
    /// BTF type ids (in the kernel's vmlinux BTF) of `struct file` and `struct mount`:
    /// the typed programs hand them to `bpf_rdonly_cast` to type a pointer again after
    /// a helper read. They are verifier constants because this global is frozen.
    pub btf_struct_file: u32,
    pub btf_struct_mount: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 54 * 4);

/// Bits of [`KernelOffsets::features`].
pub mod feature {
    /// task, files, fdtable, file, inode, super_block: the open/mmap file identity.
    pub const FILE_IDENTITY: u32 = 1;
    /// dentry names and parents: paths.
    pub const DENTRY_WALK: u32 = 2;
    /// struct mount: paths across mount points.
    pub const MOUNT_WALK: u32 = 4;
    /// mm_struct: exe path and argv.
    pub const EXEC_DETAILS: u32 = 8;
    /// task real_parent/tgid: the parent pid.
    pub const PARENT: u32 = 16;
    /// task exit_code.
    pub const EXIT_CODE: u32 = 32;
    /// dentry d_hash: deleted files are flagged.
    pub const UNLINKED: u32 = 64;
    /// nsproxy/mnt_namespace: a file's mount namespace is known.
    pub const MOUNT_NS: u32 = 128;
    /// dentry d_iname: the typed programs load short names directly.
    pub const INLINE_NAMES: u32 = 256;
}

/// The helper number the typed programs call in place of the `bpf_rdonly_cast` kfunc.
/// No kernel has a helper by that number: userspace rewrites every such call into a
/// kfunc call (`BPF_PSEUDO_KFUNC_CALL` with the function's vmlinux BTF id) before the
/// object is loaded, where the kernel has the function (6.2+). Left alone, the verifier
/// refuses the program and the helper variant is loaded instead.
pub const KFUNC_RDONLY_CAST: u32 = 0x4d57_0001;
