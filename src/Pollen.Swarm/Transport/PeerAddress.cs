using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace Pollen.Swarm.Transport;

/// <summary>Peer addresses are "host:port" strings (IPv6 hosts in brackets); the scheme is always h2c.</summary>
public static class PeerAddress
{
    /// <summary>True when <paramref name="address"/> is host:port with a port in 1..65535 and nothing else.</summary>
    public static bool IsValid(string? address) =>
        !string.IsNullOrWhiteSpace(address)
        && address.Length <= 255
        && !address.Contains("://", StringComparison.Ordinal)
        && Uri.TryCreate("http://" + address, UriKind.Absolute, out var uri)
        && uri.PathAndQuery == "/"
        && string.IsNullOrEmpty(uri.UserInfo)
        && uri.Port is > 0 and <= 65535
        && address.EndsWith(":" + uri.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

    /// <summary>The host of a valid "host:port" (an IPv6 literal without its brackets).</summary>
    public static string Host(string address)
    {
        var uri = new Uri("http://" + address);
        return uri.HostNameType == UriHostNameType.IPv6 ? uri.Host.Trim('[', ']') : uri.Host;
    }

    /// <summary>Joins a host and a port, bracketing IPv6 literals.</summary>
    public static string Format(string host, int port) =>
        IPAddress.TryParse(host, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{host}]:{port}" : $"{host}:{port}";

    /// <summary>The address to announce when listening on <paramref name="listen"/>: itself when specific,
    /// else the first up, non-loopback IPv4 address of this machine (loopback if there is none).</summary>
    public static string DefaultHost(IPAddress listen)
    {
        if (!listen.Equals(IPAddress.Any) && !listen.Equals(IPAddress.IPv6Any))
        {
            return listen.ToString();
        }
        var candidate = NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == OperationalStatus.Up && n.NetworkInterfaceType != NetworkInterfaceType.Loopback)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == AddressFamily.InterNetwork && !IPAddress.IsLoopback(a));
        return (candidate ?? IPAddress.Loopback).ToString();
    }
}
