//! [`Priority`]: how much a request matters when there is not room for every one.

/// How much a request matters under pressure: which requests are refused first when the pool
/// is full and its queue stands.
///
/// A function named by `#[balanced(priority = PATH)]` (or [`Builder::priority`]) gives each
/// request its priority from its head, before it takes a queue place. Without one, every request
/// is [`Normal`](Priority::Normal).
///
/// Under pressure:
/// - [`Critical`](Priority::Critical) requests are served first, may take any queue place, and
///   when the queue is full take the place of a waiting lower-priority request (which is
///   answered `503`);
/// - [`Normal`](Priority::Normal) requests may take every queue place;
/// - [`Sheddable`](Priority::Sheddable) requests are served last, may take only half the queue,
///   and none while it stands (see `queue_target`): they are refused first.
///
/// When every request gets a worker at once, priorities change nothing.
///
/// # Examples
///
/// ```
/// use intralb::Priority;
///
/// /// Health checks and payments first; analytics beacons may be dropped.
/// fn priority(head: &http::request::Parts) -> Priority {
///     match head.uri.path() {
///         "/pay" | "/healthz" => Priority::Critical,
///         path if path.starts_with("/beacon") => Priority::Sheddable,
///         _ => Priority::Normal,
///     }
/// }
///
/// let builder = intralb::Builder::new().priority(priority);
/// # let _ = builder;
/// ```
///
/// [`Builder::priority`]: crate::Builder::priority
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Priority {
    /// Served first and refused last: it may displace a waiting lower-priority request.
    Critical,
    /// The default.
    #[default]
    Normal,
    /// Served last and refused first: only part of the queue, and none of it while it stands.
    Sheddable,
}

impl Priority {
    /// Every priority, most important first (the order requests are served in).
    pub(crate) const ALL: [Priority; 3] =
        [Priority::Critical, Priority::Normal, Priority::Sheddable];

    /// Its position in [`ALL`](Self::ALL).
    pub(crate) fn rank(self) -> usize {
        self as usize
    }

    /// The metrics label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::Normal => "normal",
            Priority::Sheddable => "sheddable",
        }
    }
}

/// Gives each request its [`Priority`] from its head; see [`Builder::priority`](crate::Builder::priority).
pub type PriorityFn = fn(&http::request::Parts) -> Priority;
