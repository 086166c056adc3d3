using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Pollen.Swarm;

/// <summary>
/// gRPC services served on the swarm port next to the DHT, so a node needs one port for everything
/// peers call. <see cref="Register"/> adds the services' dependencies (and per-service message limits
/// with <c>AddGrpc().AddServiceOptions&lt;T&gt;</c>); <see cref="Map"/> maps them.
/// </summary>
public sealed class SwarmServices
{
    /// <summary>Registers what the services need.</summary>
    public required Action<IServiceCollection> Register { get; init; }

    /// <summary>Maps the services (e.g. <c>endpoints.MapGrpcService&lt;T&gt;()</c>).</summary>
    public required Action<IEndpointRouteBuilder> Map { get; init; }
}
