using NSec.Cryptography;

namespace Pollen.Swarm.Identity;

/// <summary>
/// A node's Ed25519 key pair and the <see cref="PeerId"/> derived from it. The private key lives in the
/// node home directory as <c>identity.key</c> (the raw 32-byte seed), created on first start with
/// owner-only permissions and written atomically, so a crash never leaves a truncated key behind.
/// </summary>
/// <remarks>
/// Ed25519 (through NSec/libsodium, since .NET has none) gives 64-byte signatures that verify in tens of
/// microseconds, cheap enough to check every signed record a peer sends. The key is not encrypted at
/// rest: a node restarts unattended, and the file mode is the protection, as with SSH host keys.
/// </remarks>
public sealed class NodeIdentity : IDisposable
{
    /// <summary>File name of the private key inside the home directory.</summary>
    public const string KeyFileName = "identity.key";

    private static readonly SignatureAlgorithm Algorithm = SignatureAlgorithm.Ed25519;
    private readonly Key _key;

    private NodeIdentity(Key key)
    {
        _key = key;
        PublicKey = key.PublicKey.Export(KeyBlobFormat.RawPublicKey);
        PeerId = PeerId.FromPublicKey(PublicKey);
    }

    /// <summary>The raw 32-byte Ed25519 public key.</summary>
    public byte[] PublicKey { get; }

    /// <summary>SHA-256 of <see cref="PublicKey"/>: who this node is, and its DHT node id.</summary>
    public PeerId PeerId { get; }

    /// <summary>A fresh key pair that lives only in memory (tests, throw-away clients).</summary>
    public static NodeIdentity CreateEphemeral() =>
        new(Key.Create(Algorithm, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }));

    /// <summary>
    /// Loads <c>identity.key</c> from <paramref name="homeDirectory"/>, creating the directory and a new
    /// key (mode 0600 on Unix) when there is none.
    /// </summary>
    /// <exception cref="InvalidDataException">The key file exists but is not a 32-byte Ed25519 seed.</exception>
    public static NodeIdentity LoadOrCreate(string homeDirectory)
    {
        Directory.CreateDirectory(homeDirectory);
        var path = Path.Combine(homeDirectory, KeyFileName);
        if (File.Exists(path))
        {
            var seed = File.ReadAllBytes(path);
            if (seed.Length != Algorithm.PrivateKeySize
                || !Key.TryImport(Algorithm, seed, KeyBlobFormat.RawPrivateKey, out var imported, new KeyCreationParameters { ExportPolicy = KeyExportPolicies.AllowPlaintextExport }))
            {
                throw new InvalidDataException($"{path} is not a {Algorithm.PrivateKeySize}-byte Ed25519 key; move it away to create a new identity");
            }
            return new NodeIdentity(imported!);
        }

        var identity = CreateEphemeral();
        var tmp = path + "." + Guid.NewGuid().ToString("N")[..8] + ".pollen-tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        try
        {
            using (var stream = new FileStream(tmp, options))
            {
                stream.Write(identity._key.Export(KeyBlobFormat.RawPrivateKey));
                stream.Flush(flushToDisk: true);
            }
            // no overwrite: if another process created a key meanwhile, keep theirs and load it
            File.Move(tmp, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            File.Delete(tmp);
            identity.Dispose();
            return LoadOrCreate(homeDirectory);
        }
        return identity;
    }

    /// <summary>Signs <paramref name="data"/>; the signature is 64 bytes.</summary>
    public byte[] Sign(ReadOnlySpan<byte> data) => Algorithm.Sign(_key, data);

    /// <summary>
    /// True when <paramref name="signature"/> is a valid Ed25519 signature of <paramref name="data"/> by
    /// <paramref name="publicKey"/>. Malformed keys or signatures verify as false, never throw.
    /// </summary>
    public static bool Verify(ReadOnlySpan<byte> publicKey, ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        if (publicKey.Length != Algorithm.PublicKeySize || signature.Length != Algorithm.SignatureSize)
        {
            return false;
        }
        return NSec.Cryptography.PublicKey.TryImport(Algorithm, publicKey, KeyBlobFormat.RawPublicKey, out var key)
            && Algorithm.Verify(key!, data, signature);
    }

    /// <inheritdoc/>
    public void Dispose() => _key.Dispose();
}
