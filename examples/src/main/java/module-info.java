/**
 * Runnable examples and the {@code peregrine} command line. The CPU backend is not required here:
 * it is found at run time with ServiceLoader, from the class path the launcher builds.
 */
module dev.peregrine.examples {
    requires dev.peregrine;
    requires org.slf4j;
    requires jdk.incubator.vector; // peregrine bench measures memory bandwidth with vector loads
    requires jdk.management;       // and allocation per token
}
