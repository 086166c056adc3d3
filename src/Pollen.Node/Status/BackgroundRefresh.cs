namespace Pollen.Node.Status;

/// <summary>
/// The loop behind a status source's background reads: refresh at once, then every interval on the
/// injected clock, until cancelled. A failed refresh is reported and the next one tried; the snapshot
/// keeps the last good values meanwhile.
/// </summary>
internal static class BackgroundRefresh
{
    public static async Task RunAsync(Func<CancellationToken, Task> refresh, TimeSpan every, TimeProvider time, Action<Exception> failed, CancellationToken cancellationToken)
    {
        await Task.Yield();
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await refresh(cancellationToken).ConfigureAwait(false);
                await Task.Delay(every, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                failed(e);
                try
                {
                    await Task.Delay(every, time, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}
