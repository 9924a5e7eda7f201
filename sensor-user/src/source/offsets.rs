//! Resolves `sensor_common::offsets::KernelOffsets` for the running kernel: struct
//! members from BTF, tracepoint fields from tracefs. What is missing clears a feature
//! bit and is reported, so a kernel we have never seen degrades loudly instead of
//! reading garbage.

use std::path::Path;

use sensor_common::offsets::{KernelOffsets, feature};

use super::{
    btf::Btf,
    tracefs::{TracefsError, TracepointFormat},
};

/// The resolved offsets and what could not be resolved.
#[derive(Debug, Default)]
pub struct Resolved {
    pub offsets: KernelOffsets,
    /// One line per missing member or field, naming the feature it disables.
    pub missing: Vec<String>,
}

/// One group of members that enables a feature only when all of them resolve.
struct Group<'a> {
    resolved: &'a mut Resolved,
    btf: &'a Btf,
    feature: u32,
    ok: bool,
}

impl Group<'_> {
    fn member(&mut self, structure: &str, member: &str) -> u32 {
        self.first_of(structure, &[member])
    }

    /// The first of several spellings a member has had across kernel versions.
    fn first_of(&mut self, structure: &str, spellings: &[&str]) -> u32 {
        let mut last_error = None;
        for member in spellings {
            match self.btf.member_offset(structure, member) {
                Ok(offset) => return offset,
                Err(error) => last_error = Some(error),
            }
        }
        self.ok = false;
        if let Some(error) = last_error {
            self.resolved.missing.push(format!("{error} (disables {})", feature_name(self.feature)));
        }
        0
    }

    fn finish(self) {
        if self.ok {
            self.resolved.offsets.features |= self.feature;
        }
    }
}

#[must_use]
pub fn feature_name(bit: u32) -> &'static str {
    match bit {
        feature::FILE_IDENTITY => "file identity (dev, inode, size, mtime, ctime)",
        feature::DENTRY_WALK => "file paths",
        feature::MOUNT_WALK => "paths across mount points",
        feature::EXEC_DETAILS => "exe path and argv",
        feature::PARENT => "parent pid and marking runtimes' children at fork",
        feature::EXIT_CODE => "exit codes",
        feature::UNLINKED => "the deleted-file flag",
        feature::MOUNT_NS => "mount namespaces of files (paths are then read only through the process)",
        feature::INLINE_NAMES => "direct loads of short file names (a helper read each instead)",
        _ => "unknown feature",
    }
}

/// Resolves every struct offset the programs use.
#[must_use]
pub fn resolve_structs(btf: &Btf) -> Resolved {
    let mut resolved = Resolved::default();
    let o = &mut KernelOffsets::default();
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::FILE_IDENTITY, ok: true };
        o.task_files = g.member("task_struct", "files");
        o.files_fdt = g.member("files_struct", "fdt");
        o.fdtable_fd = g.member("fdtable", "fd");
        o.file_f_inode = g.member("file", "f_inode");
        o.file_f_flags = g.member("file", "f_flags");
        o.inode_i_mode = g.member("inode", "i_mode");
        o.inode_i_ino = g.member("inode", "i_ino");
        o.inode_i_size = g.member("inode", "i_size");
        o.inode_i_sb = g.member("inode", "i_sb");
        o.inode_i_rdev = g.member("inode", "i_rdev");
        // 6.7+ split the timestamp; 6.6 renamed it `__i_mtime`; older kernels: i_mtime.
        o.inode_mtime_sec = g.first_of("inode", &["i_mtime_sec", "__i_mtime.tv_sec", "i_mtime.tv_sec"]);
        o.inode_mtime_nsec = g.first_of("inode", &["i_mtime_nsec", "__i_mtime.tv_nsec", "i_mtime.tv_nsec"]);
        // ctime moved the same way (6.6 `__i_ctime`, 6.11 split in two).
        o.inode_ctime_sec = g.first_of("inode", &["i_ctime_sec", "__i_ctime.tv_sec", "i_ctime.tv_sec"]);
        o.inode_ctime_nsec = g.first_of("inode", &["i_ctime_nsec", "__i_ctime.tv_nsec", "i_ctime.tv_nsec"]);
        o.super_block_s_dev = g.member("super_block", "s_dev");
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::DENTRY_WALK, ok: true };
        o.file_f_path = g.member("file", "f_path");
        o.path_mnt = g.member("path", "mnt");
        o.path_dentry = g.member("path", "dentry");
        o.dentry_d_parent = g.member("dentry", "d_parent");
        o.dentry_d_name_len = g.member("dentry", "d_name.len");
        o.dentry_d_name_name = g.member("dentry", "d_name.name");
        o.vfsmount_mnt_root = g.member("vfsmount", "mnt_root");
        // The probes read a qstr's length and name pointer in one go.
        if g.ok && o.dentry_d_name_name != o.dentry_d_name_len + 4 {
            g.ok = false;
            g.resolved.missing.push(format!(
                "struct qstr is laid out unexpectedly (len at {}, name at {}) (disables file paths)",
                o.dentry_d_name_len, o.dentry_d_name_name
            ));
        }
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::MOUNT_WALK, ok: true };
        o.mount_mnt = g.member("mount", "mnt");
        o.mount_mnt_parent = g.member("mount", "mnt_parent");
        o.mount_mnt_mountpoint = g.member("mount", "mnt_mountpoint");
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::EXEC_DETAILS, ok: true };
        o.task_mm = g.member("task_struct", "mm");
        o.mm_exe_file = g.member("mm_struct", "exe_file");
        o.mm_arg_start = g.member("mm_struct", "arg_start");
        o.mm_arg_end = g.member("mm_struct", "arg_end");
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::PARENT, ok: true };
        o.task_real_parent = g.member("task_struct", "real_parent");
        o.task_tgid = g.member("task_struct", "tgid");
        o.task_pid = g.member("task_struct", "pid");
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::EXIT_CODE, ok: true };
        o.task_exit_code = g.member("task_struct", "exit_code");
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::UNLINKED, ok: true };
        o.dentry_d_hash_pprev = g.member("dentry", "d_hash.pprev");
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::MOUNT_NS, ok: true };
        o.task_nsproxy = g.member("task_struct", "nsproxy");
        o.nsproxy_mnt_ns = g.member("nsproxy", "mnt_ns");
        o.mnt_namespace_inum = g.member("mnt_namespace", "ns.inum");
        g.finish();
    }
    {
        let mut g = Group { resolved: &mut resolved, btf, feature: feature::INLINE_NAMES, ok: true };
        // 6.14 moved the inline name into a union (`d_shortname`) and kept `d_iname` as a
        // macro for its bytes.
        o.dentry_d_iname = g.first_of("dentry", &["d_iname", "d_shortname.string"]);
        g.finish();
    }
    // Type ids for `bpf_rdonly_cast`; 0 (void) when missing, which the typed programs'
    // loader checks before trying them (see `kfuncs`).
    o.btf_struct_file = btf.struct_id("file").unwrap_or(0);
    o.btf_struct_mount = btf.struct_id("mount").unwrap_or(0);
    let features = resolved.offsets.features;
    resolved.offsets = KernelOffsets { features, ..*o };
    resolved
}

/// Tracepoint field offsets, per hook. A hook whose format is missing is not attached.
#[derive(Debug, Default)]
pub struct TracepointFields {
    pub sys_exit_ret: Option<u32>,
    pub mmap: Option<[u32; 5]>,
    pub sock: Option<[u32; 6]>,
    pub ioctl_fd: Option<u32>,
}

/// Reads the formats of the tracepoints whose fields the programs read.
pub fn resolve_tracepoints(root: &Path, missing: &mut Vec<String>) -> TracepointFields {
    let mut note = |result: Result<_, TracefsError>| match result {
        Ok(value) => Some(value),
        Err(error) => {
            missing.push(error.to_string());
            None
        }
    };
    let read = |category: &str, name: &str, fields: &[&str]| -> Result<Vec<u32>, TracefsError> {
        let format = TracepointFormat::read(root, category, name)?;
        fields.iter().map(|field| format.offset(field)).collect()
    };
    TracepointFields {
        sys_exit_ret: note(read("syscalls", "sys_exit_openat", &["ret"])).map(|v| v[0]),
        mmap: note(read("syscalls", "sys_enter_mmap", &["len", "prot", "flags", "fd", "off"]))
            .and_then(|v| v.try_into().ok()),
        sock: note(read(
            "sock",
            "inet_sock_set_state",
            &["newstate", "sport", "family", "protocol", "saddr", "saddr_v6"],
        ))
        .and_then(|v| v.try_into().ok()),
        ioctl_fd: note(read("syscalls", "sys_enter_ioctl", &["fd"])).map(|v| v[0]),
    }
}

impl TracepointFields {
    /// Writes the fields into `offsets`.
    pub fn apply(&self, offsets: &mut KernelOffsets) {
        if let Some(ret) = self.sys_exit_ret {
            offsets.tp_sys_exit_ret = ret;
        }
        if let Some([len, prot, flags, fd, off]) = self.mmap {
            (offsets.tp_mmap_len, offsets.tp_mmap_prot, offsets.tp_mmap_flags) = (len, prot, flags);
            (offsets.tp_mmap_fd, offsets.tp_mmap_off) = (fd, off);
        }
        if let Some(fd) = self.ioctl_fd {
            offsets.tp_ioctl_fd = fd;
        }
        if let Some([newstate, sport, family, protocol, saddr, saddr_v6]) = self.sock {
            (offsets.tp_sock_newstate, offsets.tp_sock_sport) = (newstate, sport);
            (offsets.tp_sock_family, offsets.tp_sock_protocol) = (family, protocol);
            (offsets.tp_sock_saddr, offsets.tp_sock_saddr_v6) = (saddr, saddr_v6);
        }
    }
}
