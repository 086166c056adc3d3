using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

/// <summary>
/// Sets VER_FLG_WEAK on the GLIBCXX_3.4.32 entry of .gnu.version_r in libLibTorchSharp.so copies.
/// Parses the ELF64 section headers to find SHT_GNU_verneed; never edits a file in place.
/// </summary>
public class PollenWeakenGlibcxxRequirement : Task
{
    const string Library = "libLibTorchSharp.so";
    const string Version = "GLIBCXX_3.4.32";
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    [Required]
    public string Directories { get; set; }

    public override bool Execute()
    {
        if (SystemHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, "System libstdc++ defines " + Version + "; nothing to patch.");
            return true;
        }
        foreach (var dir in Directories.Split(new[] { ';' }, StringSplitOptions.RemoveEmptyEntries))
        {
            var path = Path.Combine(dir.Trim(), Library);
            if (!File.Exists(path)) continue;
            byte[] elf = File.ReadAllBytes(path);
            string error;
            int changed = Patch(elf, out error);
            if (error != null)
            {
                Log.LogWarning("Not patching " + path + ": " + error);
                continue;
            }
            if (changed == 0) continue;
            var tmp = path + ".pollen-tmp";
            File.WriteAllBytes(tmp, elf);
            File.Delete(path);          // removes only this directory entry (a hard link stays intact in the cache)
            File.Move(tmp, path);
            Log.LogMessage(MessageImportance.Normal, "Marked " + Version + " weak in " + path);
        }
        return !Log.HasLoggedErrors;
    }

    static bool SystemHasVersion()
    {
        string[] candidates =
        {
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        foreach (var c in candidates)
        {
            if (!File.Exists(c)) continue;
            var text = Encoding.ASCII.GetString(File.ReadAllBytes(c));
            return text.IndexOf(Version + "\0", StringComparison.Ordinal) >= 0;
        }
        return false;
    }

    /// <returns>The number of entries changed; error is set when the file is not a 64-bit little-endian ELF.</returns>
    static int Patch(byte[] elf, out string error)
    {
        error = null;
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
        { error = "not an ELF file"; return 0; }
        if (elf[4] != 2 || elf[5] != 1) { error = "not a 64-bit little-endian ELF file"; return 0; }
        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        if (shoff <= 0 || shentsize < 64 || shoff + (long)shentsize * shnum > elf.Length)
        { error = "section header table out of range"; return 0; }
        int changed = 0;
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long offset = BitConverter.ToInt64(elf, (int)sh + 0x18);
            long size = BitConverter.ToInt64(elf, (int)sh + 0x20);
            int link = (int)BitConverter.ToUInt32(elf, (int)sh + 0x28);
            int count = (int)BitConverter.ToUInt32(elf, (int)sh + 0x2C);
            if (link >= shnum || offset < 0 || offset + size > elf.Length) { error = "bad verneed section"; return 0; }
            long strtab = BitConverter.ToInt64(elf, (int)(shoff + (long)link * shentsize) + 0x18);
            long vn = offset;
            for (int n = 0; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, (int)vn + 2);
                long aux = vn + BitConverter.ToUInt32(elf, (int)vn + 8);
                for (int a = 0; a < auxCount; a++)
                {
                    long name = strtab + BitConverter.ToUInt32(elf, (int)aux + 8);
                    if (NameEquals(elf, name, Version))
                    {
                        ushort flags = BitConverter.ToUInt16(elf, (int)aux + 4);
                        if ((flags & VerFlgWeak) == 0)
                        {
                            flags |= VerFlgWeak;
                            elf[aux + 4] = (byte)(flags & 0xff);
                            elf[aux + 5] = (byte)(flags >> 8);
                            changed++;
                        }
                    }
                    uint nextAux = BitConverter.ToUInt32(elf, (int)aux + 12);
                    if (nextAux == 0) break;
                    aux += nextAux;
                }
                uint next = BitConverter.ToUInt32(elf, (int)vn + 12);
                if (next == 0) break;
                vn += next;
            }
        }
        return changed;
    }

    static bool NameEquals(byte[] elf, long at, string expected)
    {
        if (at < 0 || at + expected.Length >= elf.Length) return false;
        for (int i = 0; i < expected.Length; i++)
            if (elf[at + i] != (byte)expected[i]) return false;
        return elf[at + expected.Length] == 0;
    }
}
